"""`polygraphy surgeon to-fp16` end to end: outputs, the formats for older tools, data loaders, one-line errors."""

import json

import onnx
import pytest
from models import OVERFLOW_NODES, fp16_model, overflow_layernorm_model


@pytest.fixture
def overflow_path(tmp_path):
    path = tmp_path / "overflow.onnx"
    onnx.save(overflow_layernorm_model(), str(path))
    return path


def _one_error_line(proc):
    text = proc.stdout + proc.stderr
    errors = [line for line in text.splitlines() if line.startswith("[!]")]
    assert len(errors) == 1, text
    assert "Traceback" not in text
    return errors[0]


def test_converts_and_writes_every_output(run_polygraphy, overflow_path, tmp_path):
    out, report = tmp_path / "out.onnx", tmp_path / "sub" / "report.json"
    layer_precisions, exclude = tmp_path / "lp.json", tmp_path / "exclude.json"
    before = overflow_path.read_bytes()
    proc = run_polygraphy(
        "surgeon", "to-fp16", overflow_path, "-o", out, "--report", report, "--check",
        "--save-layer-precisions", layer_precisions, "--save-nodes-to-exclude", exclude,
        "--input-shapes", "x:[16,32]", "--val-range", "x:[-2,2]",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert overflow_path.read_bytes() == before
    converted = onnx.load(str(out))
    onnx.checker.check_model(converted, full_check=True)
    assert {i.name: i.data_type for i in converted.graph.initializer}["w1"] == onnx.TensorProto.FLOAT16
    # ModelOpt AutoCast matches regular expressions from the start of a name: anchored at the end too.
    assert set(json.loads(exclude.read_text())) == {name + "$" for name in OVERFLOW_NODES}
    precisions = json.loads(layer_precisions.read_text())
    assert precisions["proj"] == "float16" and precisions["ln_pow"] == "float32"
    data = json.loads(report.read_text())
    assert data["data"].startswith("generated") and data["gemm_flops_low_share"] == 1.0
    assert "--check: outputs match" in proc.stdout


def test_bf16_and_real_data_from_a_script(run_polygraphy, overflow_path, tmp_path):
    script = tmp_path / "data.py"
    script.write_text(
        "import numpy as np\n"
        "def load_data():\n"
        "    rng = np.random.default_rng(3)\n"
        "    for _ in range(3):\n"
        "        yield {'x': rng.standard_normal((8, 32)).astype(np.float32)}\n"
    )
    out, report = tmp_path / "out.onnx", tmp_path / "r.json"
    proc = run_polygraphy(
        "surgeon", "to-fp16", overflow_path, "-o", out, "--dtype", "bf16", "--data-loader-script", script,
        "--report", report,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(report.read_text())
    assert data["dtype"] == "bf16" and data["num_batches"] == 3 and data["data"] == "user-provided"
    assert "generated inputs" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "setup, args, message",
    [
        ("fp16", [], "already in fp16"),
        ("overflow", ["--keep-fp32", "NoSuchNode"], "'NoSuchNode'"),
        ("overflow", ["--no-keep-io-types", "--atol", "1e-7", "--rtol", "0"], "output 'y'"),
        ("overflow", ["--data-loader-script", "BROKEN"], "data loader failed"),
        ("overflow", ["--fp-to-fp16"], "drop it"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(run_polygraphy, overflow_path, tmp_path, setup, args, message):
    model_path = overflow_path
    if setup == "fp16":
        model_path = tmp_path / "fp16.onnx"
        onnx.save(fp16_model(), str(model_path))
    if "BROKEN" in args:
        broken = tmp_path / "broken.py"
        broken.write_text("def load_data():\n    yield {'x': __import__('numpy').zeros((2, 32), 'float32')}\n"
                          "    raise RuntimeError('the dataset is gone')\n")
        args = [str(broken) if a == "BROKEN" else a for a in args]
    out = tmp_path / "out.onnx"
    proc = run_polygraphy("surgeon", "to-fp16", model_path, "-o", out, "--input-shapes", "x:[4,32]", *args)
    assert proc.returncode != 0
    assert message in _one_error_line(proc)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({model_path.name, "overflow.onnx", "broken.py"} & {p.name for p in tmp_path.iterdir()})

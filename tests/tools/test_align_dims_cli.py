"""`polygraphy surgeon align-dims` end to end: outputs, report, --check, and one-line errors on bad input."""

import json
import sys
from pathlib import Path

import onnx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "passes" / "align_dims"))
import align_graphs as graphs  # noqa: E402

from polygraphy_ext.numerics import compare_models  # noqa: E402


@pytest.fixture
def ffn_path(tmp_path):
    path = tmp_path / "ffn.onnx"
    onnx.save(graphs.bert_ffn(hidden=64, ffn=191), str(path))
    return path


def _one_error_line(proc):
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("[!]")]
    assert len(errors) == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return errors[0]


def test_aligns_checks_and_writes_report(run_polygraphy, ffn_path, tmp_path):
    out, report = tmp_path / "out.onnx", tmp_path / "sub" / "report.json"
    before = ffn_path.read_bytes()
    proc = run_polygraphy("surgeon", "align-dims", ffn_path, "-o", out, "--check", "--report", report)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "191 -> 192" in proc.stdout and "--check: outputs match" in proc.stdout
    assert ffn_path.read_bytes() == before
    aligned = onnx.load(str(out))
    onnx.checker.check_model(aligned, full_check=True)
    assert compare_models(str(ffn_path), aligned).ok
    data = json.loads(report.read_text())
    assert data["multiple"] == 8 and data["aligned"][0]["new_size"] == 192
    assert {c["role"] for c in data["aligned"][0]["changes"]} >= {"weight", "bias", "activation"}


@pytest.mark.parametrize("flags,multiple", [(["--precision", "int8"], 16), (["--multiple", "32"], 32), ([], 8)])
def test_precision_and_multiple(run_polygraphy, ffn_path, tmp_path, flags, multiple):
    out, report = tmp_path / "out.onnx", tmp_path / "r.json"
    proc = run_polygraphy("surgeon", "align-dims", ffn_path, "-o", out, "--report", report, *flags)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(report.read_text())
    assert data["multiple"] == multiple and data["aligned"][0]["new_size"] == 192


def test_max_overhead_zero_leaves_model_alone(run_polygraphy, ffn_path, tmp_path):
    out, report = tmp_path / "out.onnx", tmp_path / "r.json"
    proc = run_polygraphy("surgeon", "align-dims", ffn_path, "-o", out, "--max-overhead", "0", "--report", report)
    assert proc.returncode == 0
    data = json.loads(report.read_text())
    assert data["aligned"] == [] and "max overhead 0%" in data["left_alone"][0]["reason"]


def test_help_documents_every_option(run_polygraphy):
    proc = run_polygraphy("surgeon", "align-dims", "-h")
    assert proc.returncode == 0
    for option in ("--precision", "--multiple", "--max-overhead", "--report", "--check"):
        assert option in proc.stdout
    doc = (Path(__file__).resolve().parents[2] / "docs" / "align-dims.md").read_text()
    for option in ("--precision", "--multiple", "--max-overhead", "--report", "--check", "-o"):
        assert f"`{option}" in doc


def _custom_op_model():
    """A node onnxruntime has no kernel for: --check cannot run it."""
    b = graphs.ModelBuilder(13)
    x = b.input("x", ["batch", 16])
    h = b.op("MatMul", [x, b.weight(16, 8)])
    b.nodes.append(onnx.helper.make_node("Mystery", [h], ["y"], domain="com.example"))
    model = onnx.helper.make_model(
        onnx.helper.make_graph(b.nodes, "custom", b.inputs, [onnx.helper.make_tensor_value_info("y", 1, None)], b.inits),
        opset_imports=[onnx.helper.make_opsetid("", 17), onnx.helper.make_opsetid("com.example", 1)],
    )
    return model


def test_check_rejects_a_differing_model():
    from polygraphy.exception import PolygraphyException

    from polygraphy_ext.tools.align_dims import AlignDims

    original = graphs.bert_ffn(hidden=64, ffn=191)
    different = graphs.bert_ffn(hidden=64, ffn=191)
    different.graph.initializer[2].CopyFrom(
        onnx.numpy_helper.from_array(
            onnx.numpy_helper.to_array(different.graph.initializer[2]) + 1.0, different.graph.initializer[2].name
        )
    )
    with pytest.raises(PolygraphyException, match="--check failed, nothing written"):
        AlignDims._check(original, different)


@pytest.mark.parametrize(
    "case,expected",
    [
        ("missing", "Model file not found"),
        ("garbage", "Could not load ONNX model"),
        ("same-path", "must differ from the input model"),
        ("both", "mutually exclusive"),
        ("zero-multiple", "multiple must be a positive integer"),
        ("bad-precision", "unknown precision 'fp64'"),
        ("negative-overhead", "--max-overhead must be a percentage >= 0"),
        ("check-cannot-run", "--check could not run the model in onnxruntime"),
    ],
)
def test_bad_input_one_line_error_no_output(run_polygraphy, ffn_path, tmp_path, case, expected):
    out = tmp_path / "out.onnx"
    model = ffn_path
    extra = []
    if case == "missing":
        model = tmp_path / "nope.onnx"
    elif case == "garbage":
        model = tmp_path / "garbage.onnx"
        model.write_bytes(b"not a model")
    elif case == "same-path":
        out = ffn_path
    elif case == "both":
        extra = ["--precision", "fp16", "--multiple", "8"]
    elif case == "zero-multiple":
        extra = ["--multiple", "0"]
    elif case == "bad-precision":
        extra = ["--precision", "fp64"]
    elif case == "negative-overhead":
        extra = ["--max-overhead", "-1"]
    elif case == "check-cannot-run":
        model = tmp_path / "custom.onnx"
        onnx.save(_custom_op_model(), str(model))
        extra = ["--check"]
    before = ffn_path.read_bytes()
    proc = run_polygraphy("surgeon", "align-dims", model, "-o", out, "--report", tmp_path / "r.json", *extra)
    assert proc.returncode == 1
    assert expected in _one_error_line(proc)
    assert not (tmp_path / "r.json").exists()
    assert ffn_path.read_bytes() == before
    if case != "same-path":
        assert not out.exists()
    assert not list(tmp_path.glob(".*.tmp"))

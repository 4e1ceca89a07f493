"""The shared --check: plugin nodes through the CPU reference, a higher-precision reference, tolerances that follow
the models' precision, and Polygraphy's data loader options for models whose inputs are constrained."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

FIXTURES = Path(__file__).resolve().parents[1] / "passes" / "fuse_layernorm" / "fixtures"
BERT14 = FIXTURES / "bert_block_opset14.onnx"
BERT_FP16 = FIXTURES / "bert_block_fp16_opset13.onnx"


def _fail_line(proc):
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.startswith("[!]")]
    assert len(lines) == 1, text
    return lines[0]


def _check_line(proc):
    return next(line for line in proc.stdout.splitlines() if "--check: outputs" in line)


def test_plugin_target_is_checked_through_the_cpu_reference(run_polygraphy, tmp_path):
    out = tmp_path / "p.onnx"
    proc = run_polygraphy("surgeon", "fuse-ln", BERT14, "-o", out, "--target", "plugin", "--skip", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "plugin nodes through their CPU reference ops (LayerNorm x1, SkipLayerNorm x2)" in proc.stdout
    line = _check_line(proc)
    assert "outputs match" in line and "reference: the original in float64" in line
    assert [n.op_type for n in onnx.load(str(out)).graph.node].count("SkipLayerNorm") == 2


def test_fp16_model_passes_at_its_defaults_and_fails_at_fp32_tolerances(run_polygraphy, tmp_path):
    out = tmp_path / "f.onnx"
    proc = run_polygraphy("surgeon", "fuse-ln", BERT_FP16, "-o", out, "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "atol=0.01, rtol=0.01" in _check_line(proc)
    proc = run_polygraphy("surgeon", "fuse-ln", BERT_FP16, "-o", out, "--check", "--check-atol", "1e-4",
                          "--check-rtol", "1e-3")
    assert proc.returncode == 1 and "--check failed, nothing written" in _fail_line(proc)


def test_check_help_states_the_precision_defaults(run_polygraphy):
    text = " ".join(run_polygraphy("surgeon", "fuse-ln", "-h").stdout.split())
    assert "0.01 when either model has float16 tensors" in text and "0.05 with bfloat16" in text
    for option in ("--input-shapes", "--data-loader-script", "--seed", "--load-inputs"):
        assert option in text, option


def _past_model(path):
    """y = LayerNorm(Concat(past, x) * mask): the mask's length must be past + sequence, as in GPT-2 with past."""
    h = 8
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Concat", ["past", "x"], ["cat"], axis=1),
        helper.make_node("Unsqueeze", ["mask", "axis2"], ["m3"]),
        helper.make_node("Mul", ["cat", "m3"], ["hid"]),
        helper.make_node("ReduceMean", ["hid"], ["mu"], axes=[-1]),
        helper.make_node("Sub", ["hid", "mu"], ["d"]),
        helper.make_node("Mul", ["d", "d"], ["d2"]),
        helper.make_node("ReduceMean", ["d2"], ["var"], axes=[-1]),
        helper.make_node("Add", ["var", "eps"], ["ve"]),
        helper.make_node("Sqrt", ["ve"], ["sd"]),
        helper.make_node("Div", ["d", "sd"], ["n"]),
        helper.make_node("Mul", ["n", "gamma"], ["ng"]),
        helper.make_node("Add", ["ng", "beta"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "past",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", h]),
         helper.make_tensor_value_info("past", TensorProto.FLOAT, ["batch", "past_seq", h]),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", "total_seq"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "total_seq", h])],
        [numpy_helper.from_array(np.array([2], np.int64), "axis2"),
         numpy_helper.from_array(np.array(1e-5, np.float32), "eps"),
         numpy_helper.from_array(rng.uniform(0.5, 1.5, h).astype(np.float32), "gamma"),
         numpy_helper.from_array(rng.uniform(-1, 1, h).astype(np.float32), "beta")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_constrained_inputs_need_input_shapes(run_polygraphy, tmp_path):
    src, out = _past_model(tmp_path / "past.onnx"), tmp_path / "o.onnx"
    proc = run_polygraphy("surgeon", "fuse-ln", src, "-o", out, "--check")
    assert proc.returncode == 1 and "--check could not run the model in onnxruntime" in _fail_line(proc)
    assert not out.exists()
    proc = run_polygraphy("surgeon", "fuse-ln", src, "-o", out, "--check",
                          "--input-shapes", "x:[1,3,8]", "past:[1,2,8]", "mask:[1,5]")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "outputs match" in _check_line(proc) and "fused 1 of 1" in proc.stdout
    proc = run_polygraphy("surgeon", "fuse-ln", src, "-o", out, "--check", "--input-shapes", "nope:[1]")
    assert proc.returncode == 1 and "--input-shapes names nope" in _fail_line(proc)


def test_data_loader_script_feeds_the_check(run_polygraphy, tmp_path):
    src, out = _past_model(tmp_path / "past.onnx"), tmp_path / "o.onnx"
    script = tmp_path / "data.py"
    script.write_text(
        "import numpy as np\n"
        "def load_data():\n"
        "    rng = np.random.default_rng(1)\n"
        "    for past in (0, 3):\n"
        "        yield {'x': rng.standard_normal((2, 4, 8)).astype(np.float32),\n"
        "               'past': rng.standard_normal((2, past, 8)).astype(np.float32),\n"
        "               'mask': np.ones((2, past + 4), np.float32)}\n"
    )
    proc = run_polygraphy("surgeon", "fuse-ln", src, "-o", out, "--check", "--data-loader-script", script)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = _check_line(proc)
    assert "2 output/input pairs" in line and "data loader #" in line


def test_promoted_reference_keeps_ops_without_wide_kernels_in_float32():
    import onnxruntime as ort

    from polygraphy_ext.numerics import promote_floats

    graph = helper.make_graph(
        [helper.make_node("Erf", ["x"], ["e"]), helper.make_node("Add", ["e", "one"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [4])],
        [numpy_helper.from_array(np.ones(4, np.float16), "one")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    promoted = promote_floats(model, TensorProto.DOUBLE, keep_ops=["Erf"])
    assert promoted.graph.input[0].type.tensor_type.elem_type == TensorProto.DOUBLE
    assert [n.op_type for n in promoted.graph.node] == ["Cast", "Erf", "Cast", "Add"]
    assert onnx.numpy_helper.to_array(promoted.graph.initializer[0]).dtype == np.float64
    x = np.array([-1, 0, 0.5, 2], np.float64)
    (y,) = ort.InferenceSession(promoted.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    from math import erf

    assert y.dtype == np.float64 and np.allclose(y, [erf(v) + 1 for v in x], atol=1e-6)
    with pytest.raises(Exception, match="Erf"):
        ort.InferenceSession(promote_floats(model, TensorProto.DOUBLE).SerializeToString(),
                             providers=["CPUExecutionProvider"])

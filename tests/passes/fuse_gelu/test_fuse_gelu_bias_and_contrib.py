"""--target plugin folds the bias Add in front of a GELU (or refuses to, with a note); contrib ops are replaced."""

import numpy as np
import pytest
from gelu_chains import Chain, erf_torchscript, tanh_gelu_new, with_bias
from gelu_checks import assert_equivalent, op_types, run_pass
from onnx import helper, numpy_helper


def _plugin_node(model):
    (node,) = [n for n in model.graph.node if n.op_type == "BiasGelu"]
    return node


def _initializer(model, name):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}[name]


@pytest.mark.parametrize("swap", [False, True], ids=["bias-second", "bias-first"])
@pytest.mark.parametrize("bias_shape", [(16,), (1, 16)], ids=["1d", "1x16"])
@pytest.mark.parametrize("spelling", [erf_torchscript, tanh_gelu_new], ids=lambda f: f.__name__)
def test_bias_add_folds_into_plugin(spelling, bias_shape, swap):
    model, bias_name = with_bias(spelling, bias_shape, swap=swap)
    fused, report = run_pass(model, target="plugin")
    assert op_types(fused) == ["BiasGelu"], report.summary()
    node = _plugin_node(fused)
    assert node.input[0] == "x"
    folded = _initializer(fused, node.input[1])
    assert folded.shape == (16,)
    np.testing.assert_array_equal(folded, _initializer(model, bias_name).reshape(-1))
    assert report.fused[0].bias == bias_name and report.fused[0].input == "x"
    assert_equivalent(model, fused, plugin=True)


def test_no_bias_keeps_the_add():
    model, _ = with_bias(erf_torchscript, (16,))
    fused, report = run_pass(model, target="plugin", bias=False)
    assert op_types(fused) == ["Add", "BiasGelu"]
    assert len(_plugin_node(fused).input) == 1
    assert_equivalent(model, fused, plugin=True)


def test_native_target_keeps_the_bias_add():
    model, _ = with_bias(tanh_gelu_new, (16,))
    fused, report = run_pass(model)
    assert op_types(fused) == ["Add", "Gelu"]
    assert_equivalent(model, fused)


@pytest.mark.parametrize(
    "bias_shape, why",
    [
        ((3, 1), "does not broadcast over the last axis only"),
        ((3, 16), "does not broadcast over the last axis only"),
        ((), "does not broadcast over the last axis only"),
        ((1, 1, 16), "higher rank than the input"),
    ],
    ids=["per-row", "per-position", "scalar", "rank-raising"],
)
def test_bias_that_does_not_broadcast_over_the_last_axis_only_is_not_folded(bias_shape, why):
    model, _ = with_bias(erf_torchscript, bias_shape)
    fused, report = run_pass(model, target="plugin")
    (candidate,) = report.candidates
    assert candidate.fused and candidate.bias is None
    assert any(why in note for note in candidate.notes), candidate.notes
    assert "Add" in op_types(fused) and len(_plugin_node(fused).input) == 1
    assert_equivalent(model, fused, plugin=True)


def test_non_constant_bias_is_not_folded():
    c = Chain()
    b = c.input("b", np.float32, [16])
    y = erf_torchscript(c, c.op("Add", c.x, b))
    model = c.model(y)
    fused, report = run_pass(model, target="plugin")
    assert op_types(fused) == ["Add", "BiasGelu"]
    assert "not folded" in report.fused[0].notes[0]
    assert_equivalent(model, fused, plugin=True)


def test_biased_sum_used_elsewhere_is_not_folded():
    c = Chain()
    biased = c.op("Add", c.x, c.const(0.25, shape=(16,)))
    y = c.op("Add", erf_torchscript(c, biased), biased)  # a residual that needs the biased sum
    model = c.model(y)
    fused, report = run_pass(model, target="plugin")
    assert sorted(op_types(fused)) == ["Add", "Add", "BiasGelu"]
    assert "also used outside" in report.fused[0].notes[0]
    assert_equivalent(model, fused, plugin=True)


def test_unknown_last_dim_is_not_folded():
    c = Chain(shape=("N", "H"))
    y = erf_torchscript(c, c.op("Add", c.x, c.const(0.25, shape=(16,))))
    model = c.model(y)
    fused, report = run_pass(model, target="plugin")
    assert "last dim" in report.fused[0].notes[0]


def test_fp16_bias_and_cast_wrapped_chain_fold_to_an_fp16_plugin():
    c = Chain(dtype=np.float16, const_dtype=np.float32)
    biased = c.op("Add", c.x, c.const(0.5, dtype=np.float16, shape=(16,)))
    y = c.cast(tanh_gelu_new(c, c.cast(biased, np.float32)), np.float16)
    model = c.model(y)
    fused, report = run_pass(model, target="plugin")
    assert op_types(fused) == ["BiasGelu"], report.summary()
    assert _initializer(fused, _plugin_node(fused).input[1]).dtype == np.float16
    assert_equivalent(model, fused, plugin=True)


def test_fp32_output_of_an_fp16_input_keeps_the_plugin_in_fp32():
    """x16 -> Cast fp32 -> GELU -> fp32 out: reading fp16 is exact, writing fp16 would round the output."""
    c = Chain(dtype=np.float16, const_dtype=np.float32)
    y = erf_torchscript(c, c.cast(c.x, np.float32))
    model = c.model(y, out_dtype=np.float32)
    fused, report = run_pass(model, target="plugin")
    assert op_types(fused) == ["Cast", "BiasGelu"], report.summary()
    assert_equivalent(model, fused, plugin=True)


# ---- onnxruntime contrib ops ---------------------------------------------------------------------------
def _contrib(op, with_bias, dtype=np.float32):
    c = Chain(dtype=dtype)
    inputs = [c.x] + ([c.const(0.1, shape=(16,))] if with_bias else [])
    y = c.op(op, *inputs, domain="com.microsoft")
    return c.model(y, extra_domains=("com.microsoft",))


@pytest.mark.parametrize(
    "op, with_bias, approximate",
    [("Gelu", False, "none"), ("FastGelu", False, "tanh"), ("FastGelu", True, "tanh"), ("BiasGelu", True, "none")],
)
def test_contrib_ops_become_native_gelu(op, with_bias, approximate):
    model = _contrib(op, with_bias)
    fused, report = run_pass(model)
    assert report.fused[0].pattern == f"com.microsoft.{op}"
    assert op_types(fused) == (["Add", "Gelu"] if with_bias else ["Gelu"])
    gelu = [n for n in fused.graph.node if n.op_type == "Gelu"][0]
    assert helper.get_attribute_value(gelu.attribute[0]).decode() == approximate
    assert_equivalent(model, fused)


@pytest.mark.parametrize("op, with_bias", [("Gelu", False), ("FastGelu", True), ("BiasGelu", True)])
def test_contrib_ops_become_the_plugin_with_their_bias(op, with_bias):
    model = _contrib(op, with_bias)
    fused, report = run_pass(model, target="plugin")
    assert op_types(fused) == ["BiasGelu"]
    assert len(_plugin_node(fused).input) == (2 if with_bias else 1)
    assert_equivalent(model, fused, plugin=True)


def test_existing_onnx_gelu_becomes_the_plugin_with_its_bias():
    c = Chain(opset=20)
    y = c.op("Gelu", c.op("Add", c.const(0.3, shape=(16,)), c.x), approximate="tanh")
    model = c.model(y)
    assert not run_pass(model)[1].candidates  # native: nothing to do
    fused, report = run_pass(model, target="plugin")
    assert op_types(fused) == ["BiasGelu"] and report.fused[0].pattern == "onnx-gelu"
    assert_equivalent(model, fused, plugin=True)


@pytest.mark.parametrize("spelling", [erf_torchscript, tanh_gelu_new], ids=lambda f: f.__name__)
def test_bfloat16_chain_and_bias(spelling):
    """bfloat16 constants are judged by bfloat16 rounding; the plugin keeps the model's own bf16 bias tensor."""
    import ml_dtypes
    import onnx
    from test_fuse_gelu_property import evaluate

    model, bias_name = with_bias(spelling, (16,), dtype=ml_dtypes.bfloat16)
    fused, report = run_pass(model)
    assert op_types(fused) == ["Add", "Gelu"], report.summary()
    onnx.checker.check_model(fused, full_check=True)
    fused, report = run_pass(model, target="plugin")
    assert op_types(fused) == ["BiasGelu"] and _plugin_node(fused).input[1] == bias_name
    assert fused.graph.initializer[0].data_type == onnx.TensorProto.BFLOAT16
    x = np.random.default_rng(0).standard_normal((3, 16)) * 3
    want, got = evaluate(model, {"x": x})[0], evaluate(fused, {"x": x})[0]
    # Only the bf16 rounding of the chain's own constants (sqrt(2) is 1.4140625 in bf16) separates the two.
    np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-2)

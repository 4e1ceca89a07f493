"""What fuse-gelu must not fuse: each is reported with its reason and the model stays byte-identical."""

import math

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest
from gelu_chains import SQRT2, Chain, K, build, erf_torchscript, quick_gelu
from gelu_checks import assert_equivalent, assert_unchanged, op_types, run_pass

from polygraphy_ext.passes.gelu_fusion import GeluFusionError, fuse_gelu


@pytest.mark.parametrize("swap", [False, True], ids=["order-a", "order-b"])
def test_quick_gelu_is_reported_not_fused(swap):
    report = assert_unchanged(build(quick_gelu, swap=swap))
    (candidate,) = report.candidates
    assert candidate.pattern == "quick-gelu" and "QuickGELU" in candidate.reason


def test_silu_and_plain_tanh_are_not_candidates():
    c = Chain()
    y = c.op("Add", c.op("Mul", c.x, c.op("Sigmoid", c.x)), c.op("Tanh", c.x))
    assert not assert_unchanged(c.model(y)).candidates


def _erf_chain(div=SQRT2, one=1.0, half=0.5, swap=False, mul_instead=None):
    c = Chain(swap=swap)
    arg = c.op("Mul", c.x, c.const(mul_instead)) if mul_instead else c.op("Div", c.x, c.const(div))
    e = c.op("Erf", arg)
    return c.model(c.op("Mul", c.op("Mul", c.x, c.op("Add", e, c.const(one))), c.const(half)))


def _tanh_chain(k=K, cubic=0.044715, exponent=3.0, swap=False):
    c = Chain(swap=swap)
    inner = c.op("Add", c.x, c.op("Mul", c.const(cubic), c.op("Pow", c.x, c.const(exponent))))
    t = c.op("Tanh", c.op("Mul", c.const(k), inner))
    return c.model(c.op("Mul", c.op("Mul", c.const(0.5), c.x), c.op("Add", c.const(1.0), t)))


@pytest.mark.parametrize("swap", [False, True], ids=["order-a", "order-b"])
@pytest.mark.parametrize(
    "model_fn, reason",
    [
        (lambda s: _erf_chain(div=1.5, swap=s), "erf argument"),
        (lambda s: _erf_chain(div=SQRT2 * (1 + 1e-5), swap=s), "erf argument"),
        (lambda s: _erf_chain(mul_instead=0.7071, swap=s), "erf argument"),  # 4 digits: more than rounding
        (lambda s: _erf_chain(one=1.001, swap=s), "not GELU's"),
        (lambda s: _erf_chain(half=0.51, swap=s), "not GELU's"),
        (lambda s: _tanh_chain(cubic=0.045, swap=s), "tanh argument"),
        (lambda s: _tanh_chain(k=0.7978, swap=s), "tanh argument"),
        (lambda s: _tanh_chain(exponent=2.0, swap=s), None),  # x^2: not a GELU at all
    ],
    ids=["sqrt2-1.5", "sqrt2-1e-5", "0.7071", "one-1.001", "half-0.51", "cubic-0.045", "k-0.7978", "square"],
)
def test_constants_off_by_more_than_rounding(model_fn, reason, swap):
    report = assert_unchanged(model_fn(swap))
    if reason is None:
        assert not report.fused
    else:
        assert reason in report.candidates[0].reason, report.candidates[0].reason


@pytest.mark.parametrize(
    "model",
    [
        _erf_chain(mul_instead=0.70710678),  # 8 digits
        _tanh_chain(k=0.797885),  # 6 significant digits
        _erf_chain(div=float(np.float32(SQRT2)) * (1 + 4e-7)),  # within 1e-6 of sqrt(2)
    ],
    ids=["0.70710678", "0.797885", "sqrt2+4e-7"],
)
def test_constants_within_rounding_fuse(model):
    fused, report = run_pass(model)
    assert len(report.fused) == 1, report.summary()
    assert_equivalent(model, fused, kinds=("random",))


@pytest.mark.parametrize("which", ["erf", "add", "mul"])
def test_intermediate_consumed_outside_the_chain(which):
    c = Chain()
    e = c.op("Erf", c.op("Div", c.x, c.const(SQRT2)))
    a = c.op("Add", e, c.const(1.0))
    m = c.op("Mul", c.x, a)
    y = c.op("Mul", m, c.const(0.5))
    leak = {"erf": e, "add": a, "mul": m}[which]
    y = c.op("Add", y, c.op("Neg", leak))
    report = assert_unchanged(c.model(y))
    assert "outside" in report.candidates[0].reason or "more than one consumer" in report.candidates[0].reason


def test_intermediate_that_is_a_graph_output():
    c = Chain()
    e = c.op("Erf", c.op("Div", c.x, c.const(SQRT2)))
    y = c.op("Mul", c.op("Mul", c.x, c.op("Add", e, c.const(1.0))), c.const(0.5))
    c.extra_outputs.append(e)
    report = assert_unchanged(c.model(y))
    assert "graph output" in report.candidates[0].reason


def test_erf_of_another_tensor_is_not_gelu():
    c = Chain()
    other = c.input("z", np.float32)
    e = c.op("Erf", c.op("Div", other, c.const(SQRT2)))
    y = c.op("Mul", c.op("Mul", c.x, c.op("Add", e, c.const(1.0))), c.const(0.5))  # x * Phi(z)
    report = assert_unchanged(c.model(y))
    assert not report.fused and report.candidates


def test_constant_that_raises_the_rank_is_refused():
    c = Chain()
    e = c.op("Erf", c.op("Div", c.x, c.const(SQRT2, shape=(1, 1, 1))))
    y = c.op("Mul", c.op("Mul", c.x, c.op("Add", e, c.const(1.0))), c.const(0.5))
    model = c.model(y)
    model.graph.output[0].type.tensor_type.ClearField("shape")
    report = assert_unchanged(model, infer_shapes=False)
    assert "would broadcast" in report.candidates[0].reason


def test_custom_domain_ops_named_like_onnx_ops_are_not_read():
    c = Chain()
    e = c.op("Erf", c.op("Div", c.x, c.const(SQRT2)), domain="com.example")
    y = c.op("Mul", c.op("Mul", c.x, c.op("Add", e, c.const(1.0))), c.const(0.5))
    model = c.model(y, extra_domains=("com.example",))
    graph = gs.import_onnx(model)
    assert not fuse_gelu(graph).candidates


def _model_with_spatial_batchnorm():
    """BatchNormalization(spatial=0) of opset 8 has no exact form at opset 20: the raise must stop."""
    c = Chain(opset=8)
    params = [c.const(v, shape=(16,)) for v in (1.5, 0.25, 0.0, 1.0)]
    return c.model(erf_torchscript(c, c.op("BatchNormalization", c.x, *params, spatial=0)))


def test_opset_raise_without_an_exact_form_stops_with_one_line():
    model = _model_with_spatial_batchnorm()
    graph = gs.import_onnx(model)
    with pytest.raises(GeluFusionError, match="needs opset 20") as err:
        fuse_gelu(graph)
    assert "\n" not in str(err.value) and "--target plugin" in str(err.value) and "BatchNormalization" in str(err.value)
    assert gs.export_onnx(graph).graph == gs.export_onnx(gs.import_onnx(model)).graph
    report = assert_unchanged(model, raise_opset=False)
    assert "opset raising is off" in report.candidates[0].reason
    fused, _ = run_pass(model, target="plugin")
    assert sorted(op_types(fused)) == ["BatchNormalization", "BiasGelu"]


def test_opset_raise_upgrades_the_other_nodes_exactly():
    c = Chain(opset=11)
    model = c.model(erf_torchscript(c, c.op("Squeeze", c.op("Unsqueeze", c.x, axes=[0]), axes=[0])))
    fused, report = run_pass(model)
    assert report.opset_after == 20 and report.opset_upgrade["rewritten_per_op"] == {"Squeeze": 1, "Unsqueeze": 1}
    assert "rewrote Squeeze x1, Unsqueeze x1" in report.summary()
    assert_equivalent(model, fused)


def test_gelu_inside_an_if_branch_is_fused():
    then_c = Chain()
    y = erf_torchscript(then_c, "x")
    then_graph = onnx.helper.make_graph(
        then_c.nodes, "then", [], [onnx.helper.make_tensor_value_info(y, onnx.TensorProto.FLOAT, [3, 16])],
        initializer=then_c.inits,
    )
    else_graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["e_out"])], "else", [],
        [onnx.helper.make_tensor_value_info("e_out", onnx.TensorProto.FLOAT, [3, 16])],
    )
    cond = onnx.helper.make_tensor_value_info("cond", onnx.TensorProto.BOOL, [])
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [3, 16])
    out = onnx.helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [3, 16])
    node = onnx.helper.make_node("If", ["cond"], ["out"], then_branch=then_graph, else_branch=else_graph)
    model = onnx.helper.make_model(
        onnx.helper.make_graph([node], "m", [cond, x], [out]), opset_imports=[onnx.helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    fused, report = run_pass(model)
    assert len(report.fused) == 1, report.summary()
    branch = {a.name: a.g for a in fused.graph.node[0].attribute}["then_branch"]
    assert [n.op_type for n in branch.node] == ["Gelu"]
    onnx.checker.check_model(fused, full_check=True)
    import onnxruntime as ort

    xv = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    for cond_value in (True, False):
        feeds = {"cond": np.array(cond_value), "x": xv}
        want = ort.InferenceSession(model.SerializeToString()).run(None, feeds)[0]
        got = ort.InferenceSession(fused.SerializeToString()).run(None, feeds)[0]
        np.testing.assert_allclose(got, want, atol=2e-6, rtol=1e-5)


def test_unknown_target_is_an_error():
    with pytest.raises(GeluFusionError, match="unknown target"):
        fuse_gelu(gs.import_onnx(build(erf_torchscript)), target="cuda")


def test_exact_constants_of_every_formula_are_the_documented_ones():
    from polygraphy_ext.passes.gelu_fusion.patterns import SIGMOID_GELU, TANH_GELU

    assert TANH_GELU.argument == {1: math.sqrt(2 / math.pi), 3: math.sqrt(2 / math.pi) * 0.044715}
    assert SIGMOID_GELU.argument[1] == 2 * TANH_GELU.argument[1]

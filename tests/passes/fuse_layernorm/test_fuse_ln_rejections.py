"""Near misses are reported with a reason and leave the graph exactly as it was."""

import numpy as np
import onnx
import pytest
from onnx import helper

from fuse_ln_chains import build, variant
from fuse_ln_checks import assert_equivalent, assert_not_fused, op_types, run_pass
from polygraphy_ext.numerics import compare_models

SQUARE = (16, 16, 16)  # keepdims=0 / other-axis reductions still broadcast, so the original model is valid

NEAR_MISSES = {
    "pow-exponent-3": (variant(exponent=3.0), "Pow exponent is 3"),
    "mean-of-different-tensor": (variant(mean_of_other=True), "Sub subtracts the mean of a different tensor"),
    "keepdims-0": (variant(shape=SQUARE, keepdims=0), "keepdims=0"),
    "different-axes": (variant(shape=SQUARE, var_axes=(-2,)), "reduce different axes"),
    "mvn-axes-0-2-3": (
        variant(shape=(2, 4, 3, 5), axes=(0, 2, 3), gamma=False, beta=False),
        "axes are not a trailing block",
    ),
    "groupnorm-reshaped-axes-1-2-4": (
        variant(shape=(2, 3, 3, 2, 4), axes=(1, 2, 4), gamma=False, beta=False),
        "axes are not a trailing block",
    ),
    "eps-not-constant": (variant(eps_kind="input"), "epsilon is not a constant"),
    "eps-not-scalar": (variant(eps_shape=(16,)), "epsilon is not a scalar"),
    "eps-outside-sqrt": (variant(eps_after_sqrt=True), "epsilon sits outside the Sqrt"),
    "eps-rank-broadcasts": (variant(shape=(3, 16), axes=(-1,), eps_shape=(1, 1, 1)), "would broadcast the variance"),
    "rsqrt-exponent-minus-1": (variant(inv="pow", inv_exponent=-1.0), "exponent -1"),
    "gamma-over-other-dim": (variant(gamma_shape=(3, 1)), "does not broadcast exactly over the normalized dims"),
    "beta-per-position": (variant(beta_shape=(2, 3, 16)), "does not broadcast exactly over the normalized dims"),
    "gamma-adds-rank": (variant(gamma_shape=(1, 1, 1, 16)), "more than the input's"),
    "centered-used-outside": (variant(extra_consumer="d"), "has a consumer outside the pattern"),
    "variance-used-outside": (variant(extra_consumer="var"), "variance (variance_out) has a consumer outside"),
    "variance-plus-eps-used-outside": (variant(extra_consumer="var_eps"), "variance + epsilon (add_eps_out) has a consumer"),
    "std-used-outside": (variant(extra_consumer="std"), "std (sqrt_out) has a consumer outside"),
    "rstd-used-outside": (variant(extra_consumer="std", inv="pow"), "inverse std (rsqrt_out) has a consumer outside"),
    "variance-is-graph-output": (variant(export_intermediate="var"), "is a graph output"),
    "centered-is-graph-output": (variant(export_intermediate="d"), "(center_out) is exported as a graph output"),
    "std-is-graph-output": (variant(export_intermediate="std"), "std (sqrt_out) is a graph output"),
    "moments-with-foreign-square": (variant(form="moments", mean_of_other=True), "mean of a different tensor"),
}


@pytest.mark.parametrize("name", sorted(NEAR_MISSES))
def test_near_miss_is_not_fused(name):
    spec, reason = NEAR_MISSES[name]
    assert_not_fused(build(spec), reason)


def _strip_shapes(model):
    del model.graph.value_info[:]
    for value in list(model.graph.input) + list(model.graph.output):
        value.type.tensor_type.ClearField("shape")
    return model


def test_reduce_all_with_unknown_rank_is_refused():
    model = _strip_shapes(build(variant(shape=(4, 8), axes=None, gamma=False, beta=False)))
    assert_not_fused(model, "reduces all axes and the input rank is unknown")


def test_positive_axes_with_unknown_rank_are_refused():
    model = _strip_shapes(build(variant(axes=(2,), gamma=False, beta=False)))
    assert_not_fused(model, "positive and the input rank is unknown")


def _symbolic_dims(model):
    """Every dim symbolic, as dynamic exports leave them (each position its own name, so runs pick real sizes)."""
    for value in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        shape = value.type.tensor_type.shape
        for i, dim in enumerate(shape.dim):
            dim.dim_param = f"d{len(shape.dim) - i}"
    return model


def test_gamma_over_a_normalized_dim_nothing_proves_is_refused():
    # Two normalized dims, both symbolic; gamma [16] proves only the last one: the block is unknown.
    model = _symbolic_dims(build(variant(shape=(2, 3, 16), axes=(-2, -1), gamma_shape=(16,), beta=False)))
    assert compare_models(model, model, input_kinds=("random",), dim_values={"d1": 16}).ok
    assert_not_fused(model, "normalized dims of the input are unknown", runnable=False)


def test_pow_exponent_from_graph_input_is_refused():
    model = build(variant())
    pow_node = next(n for n in model.graph.node if n.op_type == "Pow")
    model.graph.input.append(helper.make_tensor_value_info("p", onnx.TensorProto.FLOAT, []))
    pow_node.input[1] = "p"
    assert_not_fused(model, "Pow exponent is not a constant")


def test_normalized_output_used_elsewhere_fuses_without_the_affine():
    # n feeds the affine AND another node: stopping the chain at n is exact, the affine stays as it was.
    model = build(variant(extra_consumer="n"))
    fused, report = run_pass(model)
    assert len(report.fused) == 1 and not report.fused[0].has_scale
    assert_equivalent(model, fused)


def test_an_existing_layernormalization_is_reported_as_already_native():
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 16])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 16])
    scale = onnx.numpy_helper.from_array(np.ones(16, np.float32), "s")
    node = helper.make_node("LayerNormalization", ["x", "s"], ["y"], name="ln", axis=-1)
    model = helper.make_model(helper.make_graph([node], "g", [x], [y], [scale]), opset_imports=[helper.make_opsetid("", 17)])
    fused, report = run_pass(model)
    assert [(c.anchor, c.already_native, c.fused) for c in report.candidates] == [("ln", True, False)]
    assert report.summary().startswith("fuse-ln (native): no decomposed norm to fuse; 1 already native")
    assert report.to_dict()["num_already_native"] == 1
    assert fused.graph.node[0].op_type == "LayerNormalization" and len(fused.graph.node) == 1


def test_a_custom_domain_op_with_an_onnx_name_is_not_part_of_a_chain():
    model = build(variant())
    sqrt = next(n for n in model.graph.node if n.op_type == "Sqrt")
    sqrt.domain = "com.example"  # any semantics, not ONNX's Sqrt
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    assert_not_fused(model, "feeds com.example.Sqrt sqrt, not a well-formed ONNX op", runnable=False)


@pytest.mark.parametrize("op, keep", [("Pow", 1), ("Sub", 1), ("ReduceMean", 0), ("Add", 1), ("Sqrt", 0)])
def test_malformed_nodes_end_the_match_instead_of_crashing(op, keep):
    model = build(variant())
    node = next(n for n in model.graph.node if n.op_type == op)
    del node.input[keep:]
    fused, report = run_pass(model)
    assert not report.fused
    assert op_types(fused) == op_types(model)


def test_integer_rmsnorm_shaped_chain_is_refused():
    # Valid ONNX (ReduceMean, Add, Pow and Mul accept int32) whose every step truncates: not an RMSNorm.
    i32 = onnx.TensorProto.INT32
    nodes = [
        helper.make_node("Mul", ["x", "x"], ["sq"], name="square"),
        helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1], name="variance"),
        helper.make_node("Add", ["var", "eps"], ["ve"], name="add_eps"),
        helper.make_node("Pow", ["ve", "half"], ["rstd"], name="rsqrt"),
        helper.make_node("Mul", ["x", "rstd"], ["y"], name="normalize"),
    ]
    inits = [
        onnx.numpy_helper.from_array(np.array(1, np.int32), "eps"),
        onnx.numpy_helper.from_array(np.array(-0.5, np.float32), "half"),
    ]
    graph = helper.make_graph(
        nodes, "int", [helper.make_tensor_value_info("x", i32, [2, 8])], [helper.make_tensor_value_info("y", i32, [2, 8])], inits
    )
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    onnx.checker.check_model(model)
    assert_not_fused(model, "has dtype int32, not a float type", rms=True, target="plugin")

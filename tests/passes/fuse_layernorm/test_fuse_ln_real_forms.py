"""Forms real exporters emit that small blocks miss: dynamic and symbolic dims, ONNX's own LayerNormalization
function expansion (its Mean/InvStdDev in use), gamma/beta as graph inputs, fp16 epsilons, If/Loop bodies,
existing native nodes (dynamo exports), channels-first LayerNorm, RMSNorm below opset 23."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fuse_ln_chains import IR_VERSION, build, variant
from fuse_ln_checks import assert_equivalent, assert_not_fused, op_types, run_pass
from polygraphy_ext.numerics import compare_models
from polygraphy_ext.plugins.ort_reference import lower_plugin_nodes


def _symbolic(model, keep_input_dims=()):
    """Every dim symbolic (each position its own name), as dynamic exports leave them; ``keep_input_dims``: dims of
    the graph inputs that stay static."""
    for value in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        shape = value.type.tensor_type.shape
        for i, dim in enumerate(shape.dim):
            if value in model.graph.input and i in keep_input_dims:
                continue
            dim.dim_param = f"d{len(shape.dim) - i}"
    return model


def _runs_alike(original, fused, dims, atol=2e-5, plugin=False, kinds=("random", "large_mean")):
    """``kinds``: the moments form (E[x^2]-E[x]^2) cancels in the original on large-mean rows: random rows only."""
    if plugin:
        fused, _ = lower_plugin_nodes(fused)
    else:
        onnx.checker.check_model(fused, full_check=True)
    for kind in kinds:
        result = compare_models(original, fused, atol=atol, rtol=atol, input_kinds=(kind,), dim_values=dims)
        assert result.ok, f"{kind}: {result.summary()}"


# ---- §2 dynamic and unknown shapes -------------------------------------------------------------------------------


def test_symbolic_hidden_size_is_proven_by_gamma():
    model = _symbolic(build(variant()))
    fused, report = run_pass(model)
    assert len(report.fused) == 1, report.summary()
    assert "gamma of shape [16] forces the normalized dims" in report.candidates[0].shape_proof
    _runs_alike(model, fused, {"d1": 16})


def test_symbolic_hidden_size_is_proven_by_the_producing_matmul():
    # x = MatMul(inp, W[8, 16]); no affine at all: the all-ones scale needs the size, which W gives.
    model = build(variant(gamma=False, beta=False))
    graph = model.graph
    graph.initializer.append(numpy_helper.from_array(np.random.default_rng(1).normal(size=(8, 16)).astype(np.float32), "W"))
    graph.input[0].name = "inp"
    graph.input[0].type.tensor_type.shape.dim[2].dim_value = 8
    graph.node.insert(0, helper.make_node("MatMul", ["inp", "W"], ["x"], name="proj"))
    del graph.value_info[:]
    model = _symbolic(onnx.shape_inference.infer_shapes(model))
    fused, report = run_pass(model)
    assert len(report.fused) == 1, report.summary()
    assert report.candidates[0].shape_proof.startswith("MatMul proj with a constant weight")
    assert "ConstantOfShape" not in op_types(fused)
    _runs_alike(model, fused, {"d1": 8})


@pytest.mark.parametrize("target", ["native", "plugin"])
def test_no_affine_with_unknown_hidden_size_builds_the_scale_from_shape(target):
    model = _symbolic(build(variant(gamma=False, beta=False)))
    fused, report = run_pass(model, target=target)
    assert len(report.fused) == 1, report.summary()
    assert "built from Shape(x)" in report.candidates[0].shape_proof
    assert {"Shape", "Slice", "ConstantOfShape"} <= set(op_types(fused))
    _runs_alike(model, fused, {"d1": 16}, plugin=target == "plugin")
    _runs_alike(model, fused, {"d1": 7}, plugin=target == "plugin")  # the same model at another hidden size


def test_scalar_gamma_over_unknown_dims_is_filled_at_run_time():
    model = _symbolic(build(variant(gamma_shape=(1,), beta_shape=(1,))))
    fused, report = run_pass(model)
    assert len(report.fused) == 1, report.summary()
    assert op_types(fused).count("ConstantOfShape") == 2  # scale and bias
    _runs_alike(model, fused, {"d1": 5})


# ---- §3 forms --------------------------------------------------------------------------------------------------


def _onnx_function_expansion(opset, axis, shape, consumers=True, dtype=TensorProto.FLOAT):
    """The decomposed LayerNormalization exactly as ONNX's own function body expands it (its backend test data),
    with scale and bias as graph inputs and Mean/InvStdDev as graph outputs."""
    from onnx.backend.test.case.node import function_testcase_helper

    rank = len(shape)
    normalized = shape[axis % rank :]
    node = helper.make_node("LayerNormalization", ["X", "W", "B"], ["Y", "Mean", "InvStdDev"], axis=axis, epsilon=1e-3)
    types = [helper.make_tensor_type_proto(dtype, s) for s in (shape, normalized, normalized)]
    bodies = function_testcase_helper(node, types, "t", opset_imports=[helper.make_opsetid("", opset)])[0]
    nodes = next(body for body, imports in bodies if imports[0].version == opset)
    inputs = [helper.make_tensor_value_info(n, dtype, s) for n, s in zip("XWB", (shape, normalized, normalized))]
    outputs = [helper.make_tensor_value_info("Y", dtype, shape)]
    if consumers:
        reduced = shape[: axis % rank] + [1] * len(normalized)
        outputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, reduced) for n in ("Mean", "InvStdDev")]
    else:
        nodes = [n for n in nodes if not set(n.output) & {"Mean", "InvStdDev"}]
    model = helper.make_model(
        helper.make_graph(nodes, "expanded", inputs, outputs), opset_imports=[helper.make_opsetid("", opset)]
    )
    model.ir_version = IR_VERSION
    return onnx.shape_inference.infer_shapes(model)


# Opset 17's body reduces with an axes attribute, 18's with an axes input (the backend test data has both).
@pytest.mark.parametrize(
    "opset, axis, shape", [(17, -1, [2, 3, 4, 5]), (17, 0, [3, 4]), (18, 1, [2, 3, 4, 5]), (18, -2, [3, 4, 5])]
)
def test_onnx_function_expansion_keeps_mean_and_invstddev_as_outputs(opset, axis, shape):
    model = _onnx_function_expansion(opset, axis, shape)
    fused, report = run_pass(model)
    assert len(report.fused) == 1, report.summary()
    assert report.candidates[0].optional_outputs == {
        "Mean": "LayerNormalization_t_expanded_function_Mean2D",
        "InvStdDev": "LayerNormalization_t_expanded_function_InvStdDev2D",
    }
    ln = next(n for n in fused.graph.node if n.op_type == "LayerNormalization")
    assert len(ln.output) == 3 and list(ln.input)[1:] != []
    assert "ReduceMean" not in op_types(fused) and "Sqrt" not in op_types(fused)
    _runs_alike(model, fused, None, atol=1e-5, kinds=("random",))


def test_onnx_function_expansion_with_plugin_target_says_why_it_keeps_it():
    model = _onnx_function_expansion(18, -1, [2, 3, 8])
    report = assert_not_fused(model, "the plugins have no Mean/InvStdDev outputs", target="plugin")
    assert "--target native keeps them" in report.candidates[0].reason
    fused, report = run_pass(_onnx_function_expansion(18, -1, [2, 3, 8], consumers=False), target="plugin")
    assert op_types(fused).count("LayerNorm") == 1
    _runs_alike(_onnx_function_expansion(18, -1, [2, 3, 8], consumers=False), fused, None, plugin=True, kinds=("random",))


def test_mean_used_outside_the_chain_becomes_the_mean_output():
    for spec in (variant(extra_consumer="mean"), variant(export_intermediate="mean")):
        model = build(spec)
        fused, report = run_pass(model)
        assert len(report.fused) == 1, report.summary()
        assert report.candidates[0].optional_outputs == {"Mean": "mean_out"}
        assert_equivalent(model, fused)


def test_gamma_and_beta_as_graph_inputs():
    model = build(variant())
    graph = model.graph
    for name in ("gamma", "beta"):
        init = next(i for i in graph.initializer if i.name == name)
        graph.initializer.remove(init)
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [16]))
    fused, report = run_pass(model)
    assert len(report.fused) == 1, report.summary()
    ln = next(n for n in fused.graph.node if n.op_type == "LayerNormalization")
    assert list(ln.input) == ["x", "gamma", "beta"]
    assert_equivalent(model, fused, kinds=("random",))
    plugin, _ = run_pass(model, target="plugin")
    assert_equivalent(model, lower_plugin_nodes(plugin)[0], kinds=("random",), checker=False)


def test_graph_input_gamma_of_another_size_is_not_taken():
    model = build(variant(shape=(2, 3, 1)))
    graph = model.graph
    graph.initializer.remove(next(i for i in graph.initializer if i.name == "gamma"))
    graph.input.append(helper.make_tensor_value_info("gamma", TensorProto.FLOAT, [16]))  # broadcasts 1 -> 16
    fused, report = run_pass(model)
    assert "gamma" not in [i for n in fused.graph.node if n.op_type == "LayerNormalization" for i in n.input]


def test_fp16_chain_with_an_fp16_epsilon_constant():
    for kind in ("init", "constant_node"):
        spec = variant(dtype=np.float16, eps=1e-5, eps_dtype=np.float16, eps_kind=kind)
        model = build(spec)
        fused, report = run_pass(model)
        assert len(report.fused) == 1, report.summary()
        cand = report.candidates[0]
        assert cand.epsilon == float(np.float16(1e-5))  # the stored value, not the float32 one
        assert any("computes its statistics in float32 (stash_type=1); the original computed them in float16" in n
                   for n in cand.notes), cand.notes
        ln = next(n for n in fused.graph.node if n.op_type == "LayerNormalization")
        assert helper.get_attribute_value(next(a for a in ln.attribute if a.name == "stash_type")) == 1
        assert_equivalent(model, fused, kinds=("random",), atol=2e-2)


def test_fp16_io_with_fp32_statistics_says_so():
    model = build(variant(leading_cast=True, cast_between_div_mul=True))
    fused, report = run_pass(model)
    notes = report.candidates[0].notes
    assert any("takes float32 and outputs float16" in n for n in notes), notes


def _if_model(then_spec, else_spec):
    """y = If(c) { chain(x) } else { chain(x) }: each branch a LayerNorm over the outer x."""

    def body(spec, name):
        chain = build(spec)
        g = chain.graph
        nodes = [n for n in g.node if n.name != "output"]
        last = next(n for n in g.node if n.name == "output").input[0]
        nodes.append(helper.make_node("Identity", [last], [f"{name}_y"], name=f"{name}_out"))
        for n in nodes:
            n.name = f"{name}_{n.name}"
            n.input[:] = [i if i == "x" else f"{name}_{i}" for i in n.input]
            n.output[:] = [o if o.endswith("_y") else f"{name}_{o}" for o in n.output]
        inits = []
        for init in g.initializer:
            init = onnx.TensorProto.FromString(init.SerializeToString())
            init.name = f"{name}_{init.name}"
            inits.append(init)
        out = helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [2, 3, 16])
        return helper.make_graph(nodes, name, [], [out], inits)

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 16])
    c = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 16])
    node = helper.make_node("If", ["c"], ["y"], name="branch", then_branch=body(then_spec, "then"),
                            else_branch=body(else_spec, "else"))
    model = helper.make_model(helper.make_graph([node], "g", [x, c], [y]), opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = IR_VERSION
    return onnx.shape_inference.infer_shapes(model)


def test_layernorms_inside_if_branches_are_fused_and_reported_per_subgraph():
    model = _if_model(variant(), variant(exponent=3.0))
    fused, report = run_pass(model)
    assert sorted((c.graph, c.fused) for c in report.candidates) == [("branch.else_branch", False), ("branch.then_branch", True)]
    assert "in subgraph branch.then_branch: fused 1 of 1" in report.summary()
    then_ops = [n.op_type for a in fused.graph.node[0].attribute if a.name == "then_branch" for n in a.g.node]
    assert "LayerNormalization" in then_ops and "ReduceMean" not in then_ops
    onnx.checker.check_model(fused, full_check=True)
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 16)).astype(np.float32)
    for cond in (True, False):
        feeds = {"x": x, "c": np.array(cond)}
        expected = ort.InferenceSession(model.SerializeToString()).run(None, feeds)[0]
        actual = ort.InferenceSession(fused.SerializeToString()).run(None, feeds)[0]
        np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=1e-5)


def test_channels_first_layernorm_is_refused_with_the_reason():
    # ConvNeXt/UniFormer LayerNorm2d: mean over axis 1 of NCHW, weight[:, None, None].
    spec = variant(shape=(2, 8, 4, 4), axes=(1,), gamma_shape=(8, 1, 1), beta_shape=(8, 1, 1))
    report = assert_not_fused(build(spec), "channels-first LayerNorm")
    assert "Transpose" in report.candidates[0].reason


# ---- §5 existing native nodes ----------------------------------------------------------------------------------


def _native_model(op="LayerNormalization", opset=17, residual=False, mean_used=False, dtype=np.float32):
    shape = [2, 3, 16]
    t = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(rng.uniform(0.5, 1.5, 16).astype(dtype), "s")]
    inputs = [helper.make_tensor_value_info("x", t, shape)]
    nodes, x = [], "x"
    if residual:
        inputs.append(helper.make_tensor_value_info("r", t, shape))
        nodes.append(helper.make_node("Add", ["x", "r"], ["sum"], name="residual"))
        x = "sum"
    ins = [x, "s"]
    if op == "LayerNormalization":
        inits.append(numpy_helper.from_array(rng.uniform(-0.5, 0.5, 16).astype(dtype), "b"))
        ins.append("b")
    outs = ["y"] + (["mean"] if mean_used else [])
    nodes.append(helper.make_node(op, ins, outs, name="norm", axis=-1, epsilon=1e-3))
    outputs = [helper.make_tensor_value_info(o, t if o == "y" else TensorProto.FLOAT, None) for o in outs]
    if residual:
        nodes.append(helper.make_node("Neg", ["sum"], ["sum_user"], name="sum_user"))
        outputs.append(helper.make_tensor_value_info("sum_user", t, None))
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return onnx.shape_inference.infer_shapes(model)


def test_native_layernorm_becomes_the_plugin_and_skip_layernorm():
    model = _native_model(residual=True)
    fused, report = run_pass(model, target="plugin")
    assert op_types(fused).count("LayerNorm") == 1 and report.candidates[-1].already_native
    assert report.fused[0].pattern == "native-layernorm" and "was LayerNormalization" in report.fused[0].notes
    _runs_alike(model, fused, None, plugin=True)
    fused, report = run_pass(model, target="plugin", skip=True)
    assert op_types(fused).count("SkipLayerNorm") == 1 and "Add" not in op_types(fused)
    assert report.fused[0].skip == {"input": "x", "skip": "r", "has_bias": False, "output_sum": True}
    _runs_alike(model, fused, None, plugin=True)


def test_native_nodes_stay_with_the_native_target_and_when_the_plugin_cannot_replace_them():
    fused, report = run_pass(_native_model(residual=True))
    assert report.summary().startswith("fuse-ln (native): no decomposed norm to fuse; 1 already native")
    fused, report = run_pass(_native_model(mean_used=True), target="plugin")
    assert not report.fused and "its Mean output (mean) is used" in report.candidates[0].reason
    assert op_types(fused) == ["LayerNormalization"]


def test_native_rmsnormalization_needs_rms_for_the_plugin():
    model = _native_model("RMSNormalization", opset=23)
    fused, report = run_pass(model, target="plugin")
    assert op_types(fused) == ["RMSNormalization"] and "RMSNorm fusion is off" in report.candidates[0].notes[0]
    fused, report = run_pass(model, target="plugin", rms=True)
    assert op_types(fused) == ["RMSNorm"]


def test_rmsnorm_below_opset_23_with_native_target_says_plugin_fuses_it():
    # A GroupNormalization-18 with a non-constant scale has no exact opset-21 form: raising 18 -> 23 is refused,
    # so the RMSNorm stays (one line naming --target plugin) and the LayerNorm still fuses at 18.
    ln = build(variant(opset=18))
    rms = build(variant(form="rms", beta=False, opset=18))
    graph = ln.graph
    for node in rms.graph.node:
        node.name = f"rms_{node.name}"
        node.input[:] = [i if i == "x" else f"rms_{i}" for i in node.input]
        node.output[:] = [f"rms_{o}" for o in node.output]
        graph.node.append(node)
    for init in rms.graph.initializer:
        init.name = f"rms_{init.name}"
        graph.initializer.append(init)
    graph.input.extend([
        helper.make_tensor_value_info("gn_x", TensorProto.FLOAT, [2, 4, 3]),
        helper.make_tensor_value_info("gn_scale", TensorProto.FLOAT, [2]),
        helper.make_tensor_value_info("gn_bias", TensorProto.FLOAT, [2]),
    ])
    graph.node.append(helper.make_node("GroupNormalization", ["gn_x", "gn_scale", "gn_bias"], ["gn_y"], name="gn",
                                       num_groups=2))
    graph.output.extend([
        helper.make_tensor_value_info("rms_y", TensorProto.FLOAT, [2, 3, 16]),
        helper.make_tensor_value_info("gn_y", TensorProto.FLOAT, [2, 4, 3]),
    ])
    del graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(ln)
    fused, report = run_pass(model, rms=True)
    reasons = {c.pattern: c.reason for c in report.candidates}
    assert reasons["layernorm-chain"] is None and report.opset_after == 18
    assert reasons["rmsnorm"].endswith("only --target plugin fuses RMSNorm below opset 23")
    assert "\n" not in reasons["rmsnorm"]
    assert op_types(fused).count("LayerNormalization") == 1 and "RMSNormalization" not in op_types(fused)
    # No full check: onnx.checker calls GroupNormalization-18 deprecated, in the original as in the output.
    assert_equivalent(model, fused, kinds=("random",), checker=False)


@pytest.mark.parametrize("shape", [(2, 3, 16), (2, 3, 4, 4)])
def test_global_average_pool_as_the_mean(shape):
    # tf2onnx writes a last-axis reduce_mean of a rank-3 tensor as GlobalAveragePool (the mean over every axis
    # after the first two): rank 3 is a LayerNorm over the last axis, rank 4 one over the last two.
    model = build(variant(shape=shape, axes=tuple(range(2 - len(shape), 0)), gamma_shape=shape[2:], beta_shape=shape[2:]))
    for node in model.graph.node:
        if node.op_type == "ReduceMean":
            node.op_type = "GlobalAveragePool"
            del node.attribute[:]
    fused, report = run_pass(model)
    assert len(report.fused) == 1 and report.candidates[0].axis == 2 - len(shape), report.summary()
    assert_equivalent(model, fused)


def _fp16_chain_with_input_affine(opset=10):
    """An all-fp16 chain over symbolic [M, N] whose scale and bias are graph inputs of shape [N], the epsilon an fp16
    constant and the exponent an fp32 constant cast to fp16: what exporters targeting old opsets emit for fp16."""
    h = np.float16
    nodes = [
        helper.make_node("ReduceMean", ["X"], ["mean"], axes=[-1], name="mean"),
        helper.make_node("Sub", ["X", "mean"], ["d"], name="center"),
        helper.make_node("Cast", ["two"], ["two16"], to=TensorProto.FLOAT16, name="two_cast"),
        helper.make_node("Pow", ["d", "two16"], ["sq"], name="square"),
        helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1], name="variance"),
        helper.make_node("Add", ["var", "eps"], ["var_eps"], name="add_eps"),
        helper.make_node("Sqrt", ["var_eps"], ["std"], name="sqrt"),
        helper.make_node("Div", ["d", "std"], ["n"], name="normalize"),
        helper.make_node("Mul", ["Scale", "n"], ["scaled"], name="mul_gamma"),
        helper.make_node("Add", ["scaled", "B"], ["Y"], name="add_beta"),
    ]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT16, ["M", "N"])]
    inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT16, ["N"]) for n in ("Scale", "B")]
    inits = [numpy_helper.from_array(np.array(2, np.float32), "two"), numpy_helper.from_array(np.array([1e-3], h), "eps")]
    graph = helper.make_graph(nodes, "fp16", inputs, [helper.make_tensor_value_info("Y", TensorProto.FLOAT16, ["M", "N"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = IR_VERSION
    return onnx.shape_inference.infer_shapes(model)


@pytest.mark.parametrize("target", ["native", "plugin"])
def test_fp16_chain_with_symbolic_dims_and_graph_input_affine(target):
    model = _fp16_chain_with_input_affine()
    fused, report = run_pass(model, target=target)
    assert len(report.fused) == 1, report.summary()
    cand = report.candidates[0]
    assert cand.epsilon == float(np.float16(1e-3)) and cand.has_scale and cand.has_bias
    assert "Scale has the input's symbolic dim N" in cand.shape_proof
    node = next(n for n in fused.graph.node if n.op_type in ("LayerNormalization", "LayerNorm"))
    assert list(node.input) == ["X", "Scale", "B"]
    _runs_alike(model, fused, {"M": 5, "N": 24}, atol=2e-2, plugin=target == "plugin", kinds=("random",))


def test_sqrt_written_as_pow_one_half():
    model = build(variant())
    graph = model.graph
    sqrt = next(n for n in graph.node if n.op_type == "Sqrt")
    sqrt.op_type = "Pow"
    sqrt.input.append("half")
    graph.initializer.append(numpy_helper.from_array(np.array(0.5, np.float32), "half"))
    fused, report = run_pass(model)
    assert len(report.fused) == 1, report.summary()
    assert_equivalent(model, fused)


def test_mean_of_an_identity_copy_of_the_input():
    # tf2onnx: ReduceMean reads x, the Sub reads Identity(x) (or the other way round): the same values.
    model = build(variant())
    graph = model.graph
    graph.node.insert(0, helper.make_node("Identity", ["x"], ["x_copy"], name="copy"))
    sub = next(n for n in graph.node if n.op_type == "Sub")
    sub.input[0] = "x_copy"
    fused, report = run_pass(model)
    assert len(report.fused) == 1 and report.candidates[0].input == "x_copy", report.summary()
    assert_equivalent(model, fused)


@pytest.mark.parametrize("axis, shape", [(-1, [2, 3, 4]), (1, [2, 3, 4])])
def test_onnx_function_expansion_of_rmsnormalization(axis, shape):
    # RMSNormalization-23's body reduces over Range(Size(Shape(X)) + axis, Size(Shape(X)), 1): axes known once the
    # rank is.
    from onnx.backend.test.case.node import function_testcase_helper

    normalized = shape[axis % len(shape):]
    node = helper.make_node("RMSNormalization", ["X", "W"], ["Y"], axis=axis, epsilon=1e-3)
    types = [helper.make_tensor_type_proto(TensorProto.FLOAT, s) for s in (shape, normalized)]
    nodes = function_testcase_helper(node, types, "t", opset_imports=[helper.make_opsetid("", 23)])[0][-1][0]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, shape),
              helper.make_tensor_value_info("W", TensorProto.FLOAT, normalized)]
    graph = helper.make_graph(nodes, "rms", inputs, [helper.make_tensor_value_info("Y", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    model.ir_version = 11
    model = onnx.shape_inference.infer_shapes(model)
    fused, report = run_pass(model, rms=True)
    expected_axis = axis - len(shape) if axis >= 0 else axis
    assert len(report.fused) == 1 and report.candidates[0].axis == expected_axis, report.summary()
    assert op_types(fused).count("RMSNormalization") == 1 and "ReduceMean" not in op_types(fused)
    _runs_alike(model, fused, None, atol=1e-5)


def test_layernorm_inside_a_loop_body():
    # Loop (2 iterations) whose body normalizes the carried tensor: the chain is in the body, reported there.
    chain = build(variant())
    body_nodes = [n for n in chain.graph.node if n.name != "output"]
    last = next(n for n in chain.graph.node if n.name == "output").input[0]
    for n in body_nodes:
        n.input[:] = ["carried" if i == "x" else i for i in n.input]
    body_nodes.append(helper.make_node("Identity", ["cond_in"], ["cond_out"], name="keep_going"))
    body_nodes.append(helper.make_node("Identity", [last], ["carried_out"], name="carry"))
    body = helper.make_graph(
        body_nodes, "body",
        [helper.make_tensor_value_info("iter", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("carried", TensorProto.FLOAT, [2, 3, 16])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("carried_out", TensorProto.FLOAT, [2, 3, 16])],
        list(chain.graph.initializer),
    )
    loop = helper.make_node("Loop", ["trips", "", "x"], ["y"], name="repeat", body=body)
    graph = helper.make_graph(
        [loop], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 16])],
        [numpy_helper.from_array(np.array(2, np.int64), "trips")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = IR_VERSION
    model = onnx.shape_inference.infer_shapes(model)
    fused, report = run_pass(model)
    assert [(c.graph, c.fused) for c in report.candidates] == [("repeat.body", True)], report.summary()
    assert "LayerNormalization" in [n.op_type for n in fused.graph.node[0].attribute[0].g.node]
    assert_equivalent(model, fused, kinds=("random", "large_mean"))

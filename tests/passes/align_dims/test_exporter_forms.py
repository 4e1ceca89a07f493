"""align-dims on the forms real exporters emit (issue 19): constants behind Identity/Constant/Transpose/Cast/Reshape,
shared constants, the 2-D Gemm between Reshapes, gated FFNs, If/Loop bodies, and composition with fuse-ln."""

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest

import align_graphs as graphs
from align_helpers import align, assert_exact, assert_unchanged, ops
from polygraphy_ext.passes import fuse_layernorm
from polygraphy_ext.passes.dim_alignment.loader import AlignDims

BATCH_SEQ = {"batch": 2, "sequence": 5}


def _real_changes_only(report):
    for dim in report.aligned:
        for change in dim.changes:
            assert change.old_shape != change.new_shape, change
    for dim in report.concrete_dims:
        assert [str(v) for v in dim.new_target] != dim.old_target, dim


def test_merged_bias_behind_identity_pads_every_layer_at_zero_cost():
    model = graphs.bert_layers_merged_bias(layers=3)
    aligned, report = align(model)
    assert [(d.old_size, d.new_size, d.boundary) for d in report.aligned] == [(191, 192, "none")] * 3
    assert ops(aligned).count("Slice") == 0 and ops(aligned).count("Pad") == 0
    # One padded copy serves the three layers; the original merged bias is gone.
    graph = gs.import_onnx(aligned)
    biases = {n.inputs[1].name for n in graph.nodes if n.op == "Add" and n.inputs[1].shape == [192]}
    assert len(biases) == 1
    assert "merged_bias_1" not in graph.tensors()
    notes = {c.sharing for d in report.aligned for c in d.changes if c.role == "bias"}
    assert notes == {"one padded copy of merged_bias_1 serves 3 uses"}
    _real_changes_only(report)
    assert_exact(model, aligned, dim_values=BATCH_SEQ)


def test_shared_constant_with_an_unpadded_user_is_duplicated_and_reported():
    model = graphs.bert_layers_merged_bias(layers=2, other_user=True)
    aligned, report = align(model)
    assert len(report.aligned) == 2 and all(d.boundary == "none" for d in report.aligned)
    graph = gs.import_onnx(aligned)
    side_add = next(n for n in graph.nodes if n.op == "Add" and "side" in [i.name for i in n.inputs])
    assert tuple(side_add.outputs[0].shape) == ("batch", 191)  # the other user keeps the original width
    notes = {c.sharing for d in report.aligned for c in d.changes if c.role == "bias"}
    assert len(notes) == 1 and "duplicated, its 1 other use(s) keep the original" in notes.pop()
    assert_exact(model, aligned, dim_values=BATCH_SEQ)


@pytest.mark.parametrize("form", ["constant_node", "transpose", "cast", "reshape", "identity_chain"])
def test_weights_and_biases_behind_exporter_ops(form):
    model = graphs.weight_behind(form)
    aligned, report = align(model, max_overhead=10)
    [dim] = report.aligned
    assert (dim.old_size, dim.new_size, dim.boundary) == (45, 48, "none")
    assert "Slice" not in ops(aligned) and "Pad" not in ops(aligned)
    roles = sorted(c.role for c in dim.changes if c.role in ("weight", "bias"))
    assert roles == ["bias", "weight", "weight"]
    _real_changes_only(report)
    assert_exact(model, aligned, dim_values={"batch": 3})


@pytest.mark.parametrize("target", ["computed", "constant"])
def test_conv1d_gemm_between_reshapes_pads_at_zero_cost(target):
    """GPT-2's Conv1D: the width flows through view(B, S, N) and view(-1, N) around the 2-D Gemms."""
    model = graphs.conv1d_gemm_ffn(target=target)
    aligned, report = align(model)
    [dim] = report.aligned
    assert (dim.op, dim.old_size, dim.new_size, dim.boundary) == ("Gemm", 191, 192, "none")
    # Slices of Shape values are the exporter's own; none is added to the activations.
    assert dim.absorbed_by and ops(aligned).count("Slice") == ops(model).count("Slice") and "Pad" not in ops(aligned)
    targets = [c for c in dim.changes if c.role == "reshape target"]
    # A literal width in a target is rewritten; a width read from the padded tensor's shape follows by itself.
    assert [(c.old_shape[-1], c.new_shape[-1]) for c in targets] == [(191, 192)] * (1 if target == "computed" else 2)
    _real_changes_only(report)
    dims = {"batch": 2, "sequence": 5} if target == "computed" else {"batch": 2}
    assert_exact(model, aligned, dim_values=dims)


def test_shape_of_the_padded_tensor_used_for_arithmetic_reads_the_true_width():
    model = graphs.shape_width_used_elsewhere()
    aligned, report = align(model, max_overhead=100)
    [dim] = report.aligned
    graph = gs.import_onnx(aligned)
    [shape] = [n for n in graph.nodes if n.op == "Shape"]
    assert shape.inputs[0].inputs[0].op == "Slice"  # the Shape sees 45, not 48
    assert_exact(model, aligned, dim_values={"batch": 2})


def test_gated_ffn_pads_gate_and_up_together_at_zero_cost():
    model = graphs.swiglu_ffn()
    aligned, report = align(model)
    assert [(d.old_size, d.new_size, d.boundary, len(d.padded_with)) for d in report.aligned] == [(150, 152, "none", 1)] * 2
    assert "Slice" not in ops(aligned) and "Pad" not in ops(aligned)
    assert all(weight_rows == 152 for weight_rows in _down_proj_rows(aligned))
    assert_exact(model, aligned, dim_values=BATCH_SEQ)


def _down_proj_rows(model):
    graph = gs.import_onnx(model)
    return [n.inputs[1].shape[0] for n in graph.nodes if n.op == "MatMul" and n.inputs[1].shape[1] == 64 and n.inputs[1].shape[0] != 64]


def test_computed_target_that_is_already_static_is_not_a_change():
    model = graphs.computed_target_already_static()
    aligned, report = align(model)
    assert not report.concrete_dims and not report.changed
    assert_unchanged(model, aligned)


def test_if_and_loop_bodies_are_aligned_and_reported_per_body():
    model = graphs.ffn_in_subgraphs()
    aligned, report = align(model, max_overhead=10)
    where = sorted(d.graph for d in report.aligned)
    assert len(where) == 3 and all(w for w in where)
    assert sorted(w.split("/")[-1] for w in where) == ["body", "else_branch", "then_branch"]
    assert all(d.boundary == "none" and (d.old_size, d.new_size) == (45, 48) for d in report.aligned)
    assert "[in If " in report.summary() and "[in Loop " in report.summary()
    onnx.checker.check_model(aligned, full_check=True)
    _assert_exact_on_both_branches(model, aligned)


def test_padded_activation_read_inside_a_subgraph_keeps_its_true_width_there():
    model = graphs.padded_tensor_read_inside_a_subgraph()
    aligned, report = align(model, max_overhead=100)
    [dim] = report.aligned
    assert dim.boundary == "slice" and any("read inside a subgraph" in r for r in dim.slice_reasons)
    _assert_exact_on_both_branches(model, aligned)


def _assert_exact_on_both_branches(model, aligned):
    import onnxruntime as ort

    x = (np.random.default_rng(0).standard_normal((2, 4, 32)) * 0.1 + 1).astype(np.float32)
    sessions = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]) for m in (model, aligned)]
    for cond in (True, False):
        expected, actual = (s.run(None, {"x": x, "cond": np.array(cond)}) for s in sessions)
        assert len(expected) == len(actual)
        for e, a in zip(expected, actual):
            np.testing.assert_allclose(a, e, atol=1e-5, rtol=1e-5)


# -- composition with fuse-ln: padding never crosses a normalized dim ------------------------------------------


def _fuse(model):
    graph = gs.import_onnx(onnx.shape_inference.infer_shapes(model))
    report = fuse_layernorm(graph)
    return gs.export_onnx(graph.cleanup().toposort()), report


@pytest.mark.parametrize("opset", [17, 18])
def test_fuse_ln_then_align_dims(opset):
    model = graphs.bert_layers_merged_bias(layers=2, decomposed_ln=True, opset=opset)
    fused, fusion = _fuse(model)
    assert len(fusion.fused) == 2
    aligned, report = align(fused)
    assert [(d.new_size, d.boundary) for d in report.aligned] == [(192, "none")] * 2
    assert ops(aligned).count("LayerNormalization") == 2 and "Slice" not in ops(aligned)
    assert_exact(model, aligned, dim_values=BATCH_SEQ)


@pytest.mark.parametrize("opset", [17, 18])
def test_align_dims_then_fuse_ln(opset):
    model = graphs.bert_layers_merged_bias(layers=2, decomposed_ln=True, opset=opset)
    aligned, report = align(model)
    assert [(d.new_size, d.boundary) for d in report.aligned] == [(192, "none")] * 2
    fused, fusion = _fuse(aligned)
    assert len(fusion.fused) == 2
    assert_exact(model, fused, dim_values=BATCH_SEQ)


@pytest.mark.parametrize("fused_first", [False, True])
def test_padding_across_a_normalized_dim_is_never_silent(fused_first):
    """An odd normalized width: the LayerNorm gets the true width (a Slice, within budget) or the padding is
    refused, and the report names the normalization either way; fuse-ln still fuses it afterwards."""
    model = graphs.head_transform()
    if fused_first:
        model, fusion = _fuse(model)
        assert len(fusion.fused) == 1
    why = "LayerNormalization normalizes over the padded axis" if fused_first else "ReduceMean reduces over the padded axis"
    aligned, report = align(model, max_overhead=0.5)
    refused = [r.reason for r in report.left_alone if "padding N 60 -> 64" in r.reason]
    assert not report.aligned and len(refused) == 1 and why in refused[0]
    aligned, report = align(model, max_overhead=100)
    [dim] = [d for d in report.aligned if d.side == "output"]
    assert dim.boundary == "slice" and any(why in reason for reason in dim.slice_reasons)
    if not fused_first:
        aligned, fusion = _fuse(aligned)
        assert len(fusion.fused) == 1
    assert_exact(model, aligned, dim_values=BATCH_SEQ)


@pytest.mark.parametrize("mode", ["keep", "round_trip", "off_reduction"])
def test_data_movement_ops_carry_the_padded_axis(mode):
    model = graphs.ffn_through_layout_ops(mode=mode)
    aligned, report = align(model, max_overhead=100)
    [dim] = [d for d in report.aligned if d.side == "output"]
    if mode == "off_reduction":
        # The width ends on axis -2: the MatMul reduces over the sequence and needs the true width.
        assert dim.boundary == "slice" and not dim.absorbed_by
        assert any("MatMul does not reduce over the padded axis" in r for r in dim.slice_reasons)
    else:
        assert dim.boundary == "none" and dim.absorbed_by and "Slice" not in ops(aligned)
    assert_exact(model, aligned, dim_values={"batch": 2})


def test_pools_and_a_squeeze_excite_gate_pad_at_zero_cost():
    model = graphs.squeeze_excite_block()
    aligned, report = align(model, max_overhead=30)
    [dim] = [d for d in report.aligned if d.old_size == 13]
    assert (dim.new_size, dim.boundary, len(dim.padded_with)) == (16, "none", 1)
    assert len(dim.absorbed_by) == 2 and "Slice" not in ops(aligned)
    assert_exact(model, aligned, dim_values={"batch": 2})


def test_check_inputs_stay_inside_the_tables_they_index():
    """BERT's token_type_ids index a 2-row table (RoBERTa's a 1-row one): generated ids must stay below that."""
    from onnx import TensorProto, helper, numpy_helper

    from polygraphy_ext.numerics import compare_models

    table = numpy_helper.from_array(np.arange(2 * 8, dtype=np.float32).reshape(2, 8), "token_type_embeddings")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["token_type_embeddings", "token_type_ids"], ["embedded"])],
        "types",
        [helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("embedded", TensorProto.FLOAT, ["batch", "sequence", 8])],
        [table],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    assert compare_models(model, model, dim_values={"batch": 4, "sequence": 16}).ok


def test_tf_tensordot_width_behind_an_int32_cast_is_rewritten():
    model = graphs.tensordot_ffn()
    aligned, report = align(model, max_overhead=10)
    [dim] = report.aligned
    assert (dim.old_size, dim.new_size, dim.boundary) == (45, 48, "none") and dim.absorbed_by
    # The int32 literal behind the Cast, and the constant [-1, 45] that flattens the activation for the next Dense.
    targets = sorted((c.old_shape, c.new_shape) for c in dim.changes if c.role == "reshape target")
    assert targets == [([-1, 45], [-1, 48]), ([45], [48])]
    literals = [n.inputs[-1].values for n in gs.import_onnx(aligned).nodes if n.op == "Concat"]
    assert sorted(v.tolist() for v in literals) == [[32], [48]] and all(v.dtype == np.int32 for v in literals)
    assert_exact(model, aligned, dim_values=BATCH_SEQ)


@pytest.mark.parametrize("kind", ["plugin", "BiasGelu", "FastGelu"])
def test_fused_bias_gelu_is_padded_through_with_its_bias(kind):
    """fuse-gelu then align-dims: a one-node gelu(x + bias) keeps the FFN padding at zero cost."""
    model = graphs.ffn_with_fused_gelu(kind)
    loader = AlignDims(model, max_overhead=10)
    aligned = loader()
    [dim] = loader.report.aligned
    assert (dim.old_size, dim.new_size, dim.boundary) == (45, 48, "none") and dim.absorbed_by
    gelu = next(n for n in gs.import_onnx(aligned).nodes if "Gelu" in n.op)
    assert tuple(gelu.inputs[1].shape) == (48,) and not gelu.inputs[1].values[45:].any()
    if kind != "plugin":  # onnxruntime runs its own contrib ops; the plugin needs TensorRT or its CPU reference
        assert_exact(model, aligned, dim_values={"batch": 2})


def test_unknown_custom_op_is_a_boundary():
    model = graphs.ffn_with_fused_gelu("BiasGelu")
    model.graph.node[1].domain = "com.example"
    model.opset_import[1].domain = "com.example"
    loader = AlignDims(model, max_overhead=100)
    loader()
    [dim] = [d for d in loader.report.aligned if d.side == "output"]
    assert dim.boundary == "slice" and any("com.example.BiasGelu is not known" in r for r in dim.slice_reasons)

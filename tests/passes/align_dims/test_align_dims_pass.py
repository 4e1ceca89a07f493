"""align_dims on synthetic graphs: each rule, exactness in onnxruntime (1e-5), and the cases that must stop."""

import numpy as np
import onnx_graphsurgeon as gs
import pytest

import align_graphs as graphs
from align_helpers import align, assert_exact, assert_unchanged, ops, weight_shape
from polygraphy_ext.passes.dim_alignment import align_dims, multiple_for


def test_bert_ffn_odd_width_padded_with_no_new_node():
    model = graphs.bert_ffn(hidden=64, ffn=191)
    aligned, report = align(model)
    assert ops(aligned) == ops(model)  # zero cost: weights only
    assert weight_shape(aligned, "MatMul", 0) == (64, 192)
    assert weight_shape(aligned, "MatMul", 1) == (192, 64)
    [dim] = report.aligned
    assert (dim.old_size, dim.new_size, dim.boundary, dim.side) == (191, 192, "none", "output")
    assert dim.absorbed_by and dim.overhead_pct < 1.0
    # The cost reported: with no Slice, every FLOP and byte the chain touches grows by 1/191, no more. Dynamic
    # batch counts as 1: the padded columns of both GEMMs alone are 2 * 16 tokens * 64 * 1 * 2 FLOPs.
    assert dim.overhead_pct == pytest.approx(100 / 191, rel=1e-3)
    assert dim.extra_flops >= 2 * 16 * 64 * 2 and dim.extra_bytes > 0
    changed = {c.tensor: (c.old_shape, c.new_shape) for c in dim.changes}
    assert any(old == [191] and new == [192] for old, new in changed.values())  # the bias
    assert_exact(model, aligned)


@pytest.mark.parametrize("activation", ["Relu", "Gelu", "Tanh", "Sigmoid"])
def test_ffn_through_activation(activation):
    model = graphs.bert_ffn(hidden=32, ffn=93, gelu=activation) if activation != "Gelu" else None
    if model is None:
        b = graphs.ModelBuilder()
        x = b.input("x", ["batch", 4, 32])
        h = b.op("Gelu", [b.linear(x, 32, 93)])
        b.output(b.linear(h, 93, 32))
        model = b.model(opset=20)
    aligned, report = align(model)
    assert [d.new_size for d in report.aligned] == [96]
    assert "Slice" not in ops(aligned) and "Pad" not in ops(aligned)
    assert_exact(model, aligned)


def test_dynamic_batch_and_sequence_untouched():
    model = graphs.bert_ffn(batch="batch", seq="sequence")
    aligned, report = align(model)
    assert [(d.old_size, d.new_size) for d in report.aligned] == [(191, 192)]
    changed = [c for d in report.aligned for c in d.changes if c.role == "activation"]
    assert changed and all(c.old_shape[:2] == ["batch", "sequence"] == c.new_shape[:2] for c in changed)
    assert list(aligned.graph.input) == list(model.graph.input)
    assert list(aligned.graph.output) == list(model.graph.output)
    assert_exact(model, aligned, dim_values={"batch": 3, "sequence": 5})


def test_vocabulary_projection_slices_once_at_the_end():
    model = graphs.vocab_projection(hidden=128, vocab=1001, seq="sequence")
    aligned, report = align(model)
    assert ops(aligned) == ["LayerNormalization", "MatMul", "Slice"]
    [dim] = report.aligned
    assert (dim.new_size, dim.boundary) == (1008, "slice") and 0 < dim.overhead_pct < 5
    assert dim.overhead_pct > 100 * 7 / 1001  # the Slice's copy costs bytes on top of the wider GEMM
    assert [c.role for c in dim.changes if c.tensor == model.graph.output[0].name] == ["slice"]
    assert aligned.graph.output[0].name == model.graph.output[0].name
    assert_exact(model, aligned)


def test_vocabulary_projection_too_costly_is_left_alone_with_reason():
    model = graphs.vocab_projection(hidden=128, vocab=1001, seq="sequence")
    aligned, report = align(model, max_overhead=0.5)
    assert_unchanged(model, aligned)
    [item] = [i for i in report.left_alone if i.op == "MatMul"]
    assert "max overhead 0.5%" in item.reason and "graph output" in item.reason


def test_conv_stack_odd_channels():
    model = graphs.conv_chain(channels=(8, 13, 29, 16))
    aligned, report = align(model, max_overhead=30)
    assert sorted((d.old_size, d.new_size) for d in report.aligned) == [(13, 16), (29, 32)]
    assert weight_shape(aligned, "Conv", 0) == (16, 8, 3, 3)
    assert weight_shape(aligned, "Conv", 1) == (32, 16, 3, 3)
    assert weight_shape(aligned, "Conv", 2) == (16, 32, 3, 3)
    assert "Slice" not in ops(aligned)
    assert_exact(model, aligned)


def test_conv_padding_respects_the_cost_model():
    model = graphs.conv_chain(channels=(8, 13, 29, 16))
    aligned, report = align(model, max_overhead=12)  # 29 -> 32 costs ~10%, 13 -> 16 ~23%
    assert [(d.old_size, d.new_size) for d in report.aligned] == [(29, 32)]
    assert any("13 -> 16" in i.reason and "max overhead 12%" in i.reason for i in report.left_alone)
    assert_exact(model, aligned)


def test_depthwise_conv_and_batchnorm_inside_the_chain():
    model = graphs.conv_chain(channels=(8, 13, 16), depthwise_after=0, batchnorm=True)
    aligned, report = align(model, max_overhead=30)
    [dim] = report.aligned
    assert (dim.old_size, dim.new_size, dim.boundary) == (13, 16, "none")
    graph = gs.import_onnx(aligned)
    depthwise = [n for n in graph.nodes if n.op == "Conv" and n.attrs.get("group", 1) > 1]
    assert depthwise[0].attrs["group"] == 16 and tuple(depthwise[0].inputs[1].shape) == (16, 1, 3, 3)
    assert_exact(model, aligned)


def test_grouped_conv_is_never_padded_through():
    model = graphs.conv_chain(channels=(8, 12, 12, 16), grouped=(1, 4))
    aligned, report = align(model, max_overhead=0)
    assert_unchanged(model, aligned)
    assert any("regroup" in i.reason for i in report.left_alone)
    aligned, _ = align(model, max_overhead=100)  # with a boundary: the grouped conv still sees 12 channels
    graph = gs.import_onnx(aligned)
    grouped = [n for n in graph.nodes if n.op == "Conv" and n.attrs.get("group", 1) == 4][0]
    assert tuple(grouped.inputs[1].shape)[:2] == (12, 3)
    assert grouped.inputs[0].inputs[0].op == "Slice"
    assert_exact(model, aligned)


def test_gemm_with_transposed_weights():
    model = graphs.gemm_mlp(k=32, hidden=93, n=16)
    aligned, report = align(model)
    assert [(d.old_size, d.new_size) for d in report.aligned] == [(93, 96)]
    assert weight_shape(aligned, "Gemm", 0) == (96, 32)  # transB: N is axis 0
    assert weight_shape(aligned, "Gemm", 1) == (16, 96)
    assert weight_shape(aligned, "Gemm", 0, input_index=2) == (96,)
    assert_exact(model, aligned)


_MIXING_OPS = {"LayerNormalization": "LayerNormalization", "Softmax": "Softmax", "ReduceMean": "ReduceMean",
               "Reshape": "Reshape", "ResidualAdd": "Add"}


@pytest.mark.parametrize("op_type", sorted(_MIXING_OPS))
def test_chain_stops_where_the_padded_dim_is_mixed(op_type):
    """The mixing op must see the true width (a Slice in front of it), never the padded one."""
    model = graphs.stops_at(op_type)
    aligned, report = align(model, max_overhead=100)
    graph = gs.import_onnx(aligned)
    mixing = [n for n in graph.nodes if n.op == _MIXING_OPS[op_type]]
    if op_type == "ResidualAdd":
        mixing = [n for n in mixing if not any(isinstance(i, gs.Constant) for i in n.inputs)]  # not the bias Add
    [stop] = mixing
    assert all(i.inputs[0].op == "Slice" for i in stop.inputs if not isinstance(i, gs.Constant) and i.inputs)
    assert all(i.shape is None or i.shape[-1] == 93 for i in stop.inputs if not isinstance(i, gs.Constant))
    assert report.aligned and all(d.boundary in ("slice", "pad") for d in report.aligned)
    assert all(d.boundary != "none" for d in report.aligned if d.old_size == 93 and d.side == "output")
    assert_exact(model, aligned)


@pytest.mark.parametrize("op_type", sorted(_MIXING_OPS))
def test_chain_that_must_stop_is_reported_with_the_boundary(op_type):
    model = graphs.stops_at(op_type)
    aligned, report = align(model, max_overhead=0)
    assert_unchanged(model, aligned)
    reasons = [i.reason for i in report.left_alone if "93 -> 96" in i.reason and "boundaries" in i.reason]
    assert reasons and all(f"-> {_MIXING_OPS[op_type]} " in r for r in reasons), report.summary()


def test_layernorm_over_padded_dim_gets_a_slice_when_affordable():
    model = graphs.stops_at("LayerNormalization")
    aligned, report = align(model, max_overhead=50)
    graph = gs.import_onnx(aligned)
    norm = [n for n in graph.nodes if n.op == "LayerNormalization"][0]
    assert norm.inputs[0].inputs[0].op == "Slice"  # LayerNorm normalizes over the true 45 values only
    assert any(d.boundary == "slice" for d in report.aligned)
    assert_exact(model, aligned)


def test_non_zero_activation_of_zero_is_absorbed_exactly():
    model = graphs.stops_at("Sigmoid")  # padded columns become sigmoid(0) = 0.5; W2's zero rows cancel them
    aligned, report = align(model)
    assert [d.boundary for d in report.aligned] == ["none"]
    assert_exact(model, aligned)


def test_activation_only_gemm_reported_not_changed():
    model = graphs.attention_scores(seq=13, head=24)
    aligned, report = align(model)
    assert_unchanged(model, aligned)
    [item] = report.left_alone
    assert item.op == "MatMul" and "activations-only" in item.reason


def test_k_side_pad_at_start():
    b = graphs.ModelBuilder(9)
    x = b.input("x", ["batch", 255])
    b.output(b.op("MatMul", [x, b.weight(255, 2048)]))
    model = b.model()
    aligned, report = align(model)
    assert ops(aligned) == ["Pad", "MatMul"]
    [dim] = report.aligned
    assert (dim.side, dim.old_size, dim.new_size, dim.boundary) == ("input", 255, 256, "pad")
    assert_exact(model, aligned)


def test_shared_weight_is_copied_not_edited():
    b = graphs.ModelBuilder(10)
    x = b.input("x", ["batch", 16])
    w1 = b.weight(16, 45)
    h = b.op("Relu", [b.op("MatMul", [x, w1])])
    y = b.op("MatMul", [h, b.weight(45, 16)])
    b.output(y)
    b.output(b.op("MatMul", [x, w1]))  # a second use of W1 whose output is a graph output
    model = b.model()
    before = model.SerializeToString()
    aligned, report = align(model, max_overhead=100)
    assert model.SerializeToString() == before  # the caller's model is never edited
    assert sorted(d.boundary for d in report.aligned) == ["none", "slice"]
    assert sorted(weight_shape(aligned, "MatMul", i) for i in range(3)) == [(16, 48), (16, 48), (48, 16)]
    assert_exact(model, aligned)


def test_api_multiples_and_argument_errors():
    assert [multiple_for(p) for p in ("fp32", "tf32", "fp16", "bf16", "int8", "fp8")] == [4, 4, 8, 8, 16, 16]
    assert multiple_for(multiple=32) == 32
    for bad in (0, -8, 8.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            multiple_for(multiple=bad)
    graph = gs.import_onnx(graphs.bert_ffn(ffn=191))
    with pytest.raises(ValueError, match="either"):
        align_dims(graph, precision="fp16", multiple=8)
    with pytest.raises(ValueError, match="unknown precision"):
        align_dims(graph, precision="fp64")
    report = align_dims(graph, multiple=32)
    assert [d.new_size for d in report.aligned] == [192]
    assert report.to_dict()["aligned"][0]["new_size"] == 192


def test_already_aligned_model_is_unchanged():
    model = graphs.bert_ffn(hidden=64, ffn=256)
    aligned, report = align(model)
    assert_unchanged(model, aligned)
    assert not report.changed and all(i.reason == "already aligned" for i in report.left_alone)


def test_conv_transpose_absorbs_and_produces_padding():
    model = graphs.conv_transpose_chain()
    aligned, report = align(model, max_overhead=30)
    assert sorted((d.op, d.old_size, d.new_size, d.boundary) for d in report.aligned) == [
        ("Conv", 13, 16, "none"),
        ("ConvTranspose", 29, 32, "none"),
    ]
    assert weight_shape(aligned, "ConvTranspose", 0) == (16, 32, 2, 2)  # C_in rows, then C_out/group columns
    assert weight_shape(aligned, "ConvTranspose", 0, input_index=2) == (32,)
    assert weight_shape(aligned, "Conv", 1) == (16, 32, 1, 1)
    assert ops(aligned) == ops(model)
    assert_exact(model, aligned)


def test_gemm_trans_a_pads_k_on_axis_0_and_n_with_no_new_node():
    model = graphs.gemm_trans_a(k=31, hidden=93)
    aligned, report = align(model, max_overhead=30)
    assert sorted((d.side, d.old_size, d.new_size, d.boundary) for d in report.aligned) == [
        ("input", 31, 32, "pad"),
        ("output", 93, 96, "none"),
    ]
    graph = gs.import_onnx(aligned)
    pad = next(n for n in graph.nodes if n.op == "Pad")
    assert list(pad.inputs[1].values) == [0, 0, 1, 0]  # K is axis 0 of A when transA=1
    assert weight_shape(aligned, "Gemm", 0) == (32, 96) and weight_shape(aligned, "Gemm", 1) == (96, 16)
    assert_exact(model, aligned)


def test_k_side_pad_too_costly_is_left_alone_with_its_cost():
    b = graphs.ModelBuilder(20)
    x = b.input("x", ["batch", 255])
    b.output(b.op("MatMul", [x, b.weight(255, 8)]))  # the Pad copies the input: dear next to an 8-wide GEMM
    model = b.model()
    aligned, report = align(model)
    assert_unchanged(model, aligned)
    [item] = report.left_alone
    assert "padding K 255 -> 256 needs a Pad costing" in item.reason and item.dims == [255, 256]


def test_old_opset_gets_attribute_form_slice_and_pad():
    model = graphs.old_opset_head(k=31, vocab=1001, opset=9)
    aligned, report = align(model, max_overhead=100)
    assert sorted(d.boundary for d in report.aligned) == ["pad", "slice"]
    nodes = {n.op_type: n for n in aligned.graph.node}
    assert len(nodes["Slice"].input) == 1 and {a.name for a in nodes["Slice"].attribute} == {"starts", "ends", "axes"}
    assert [a.ints for a in nodes["Slice"].attribute if a.name == "axes"] == [[1]]
    assert len(nodes["Pad"].input) == 1 and {a.name for a in nodes["Pad"].attribute} >= {"pads", "mode"}
    assert_exact(model, aligned)


def test_graph_output_that_also_feeds_a_boundary_gets_one_slice():
    def middle(b, h, _):
        b.output(h)
        return b.op("Softmax", [h], axis=-1)

    model = graphs.chain_with(middle, inner=45)
    aligned, report = align(model, max_overhead=100)
    slices = [n for n in aligned.graph.node if n.op_type == "Slice"]
    assert len(slices) == 1 and slices[0].output[0] in [o.name for o in aligned.graph.output]
    assert [d.boundary for d in report.aligned if d.side == "output"] == ["slice"]
    assert_exact(model, aligned)


def test_padded_value_too_large_for_fp16_stops_the_chain():
    """exp(0 + 12) is finite in fp32 but not in fp16, which the engine may use: the chain must not absorb it."""

    def middle(b, h, _):
        return b.op("Exp", [b.op("Add", [h, b.const(np.float32(12.0))])])

    model = graphs.chain_with(middle, inner=45)
    aligned, report = align(model, max_overhead=0)
    assert_unchanged(model, aligned)
    assert any("Exp of the padded value is not finite or too large" in i.reason for i in report.left_alone)
    aligned, report = align(model, max_overhead=100)
    exp = next(n for n in gs.import_onnx(aligned).nodes if n.op == "Exp")
    assert exp.inputs[0].inputs[0].op == "Slice"
    assert_exact(model, aligned)


def test_variadic_max_with_an_outside_operand_is_a_boundary():
    def middle(b, h, extra):
        return b.op("Max", [h, b.const(np.float32(0.0)), extra])

    model = graphs.chain_with(middle, inner=45, extra_input=True)
    _, report = align(model, max_overhead=0)
    assert any("Max with 3 inputs" in i.reason for i in report.left_alone)
    aligned, _ = align(model, max_overhead=100)
    maximum = next(n for n in gs.import_onnx(aligned).nodes if n.op == "Max")
    assert maximum.inputs[0].inputs[0].op == "Slice"
    assert_exact(model, aligned)


def test_depthwise_with_channel_multiplier_is_not_padded_through():
    model = graphs.depthwise_multiplier(channels=13)
    aligned, report = align(model, max_overhead=100)
    graph = gs.import_onnx(aligned)
    grouped = next(n for n in graph.nodes if n.op == "Conv" and n.attrs.get("group", 1) > 1)
    assert grouped.attrs["group"] == 13 and tuple(grouped.inputs[1].shape) == (26, 1, 3, 3)
    assert grouped.inputs[0].inputs[0].op == "Slice"
    assert any("group=13" in i.reason for i in report.left_alone)
    assert_exact(model, aligned)


def test_depthwise_conv_whose_input_is_not_padded_is_left_alone():
    b = graphs.ModelBuilder(21)
    x = b.input("x", ["batch", 13, 6, 6])
    b.output(b.conv(b.op("Relu", [b.conv(x, 13, 13, group=13)]), 13, 16, k=1))
    model = b.model()
    aligned, report = align(model, max_overhead=0)
    assert_unchanged(model, aligned)
    reasons = [i.reason for i in report.left_alone if i.op == "Conv"]
    assert any("depthwise conv: its width follows its producer" in r for r in reasons)


def test_constant_node_weights_are_candidates():
    model = graphs.constant_node_weights(inner=93)
    aligned, report = align(model)
    assert [(d.old_size, d.new_size, d.boundary) for d in report.aligned] == [(93, 96, "none")]
    assert ops(aligned) == ["MatMul", "Relu", "MatMul"]  # the Constant nodes became padded initializers
    assert weight_shape(aligned, "MatMul", 0) == (16, 96) and weight_shape(aligned, "MatMul", 1) == (96, 16)
    assert_exact(model, aligned)


def test_activations_only_gemm_operand_b_is_reported():
    b = graphs.ModelBuilder(22)
    x, w = b.input("x", [4, 13]), b.input("w", [13, 29])
    b.output(b.op("Gemm", [x, w]))
    model = b.model()
    aligned, report = align(model)
    assert_unchanged(model, aligned)
    [item] = report.left_alone
    assert item.op == "Gemm" and "activations-only" in item.reason and item.dims == [[4, 13], [13, 29]]

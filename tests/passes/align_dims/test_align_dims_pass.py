"""align_dims on synthetic graphs: each rule, exactness in onnxruntime (1e-5), and the cases that must stop."""

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
    aligned, _ = align(model)
    assert list(aligned.graph.input) == list(model.graph.input)
    assert list(aligned.graph.output) == list(model.graph.output)
    assert_exact(model, aligned, dim_values={"batch": 3, "sequence": 5})


def test_vocabulary_projection_slices_once_at_the_end():
    model = graphs.vocab_projection(hidden=128, vocab=1001, seq="sequence")
    aligned, report = align(model)
    assert ops(aligned) == ["LayerNormalization", "MatMul", "Slice"]
    [dim] = report.aligned
    assert (dim.new_size, dim.boundary) == (1008, "slice") and 0 < dim.overhead_pct < 5
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


@pytest.mark.parametrize("op_type", ["LayerNormalization", "Softmax", "ReduceMean", "Reshape", "ResidualAdd"])
def test_chain_stops_where_the_padded_dim_is_mixed(op_type):
    model = graphs.stops_at(op_type)
    aligned, report = align(model, max_overhead=0)
    assert_unchanged(model, aligned)
    assert any("max overhead 0%" in i.reason and "93 -> 96" in i.reason for i in report.left_alone)


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

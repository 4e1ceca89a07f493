"""Concrete dims: runtime-computed / -1 Reshape targets that are provably fixed become constants."""

import numpy as np
import onnx
import onnx_graphsurgeon as gs

import align_graphs as graphs
from align_helpers import align, assert_exact, assert_unchanged


def _conv_input_channels(model):
    """Channel dim of the Conv input as plain ONNX shape inference (no data propagation) sees it."""
    inferred = onnx.shape_inference.infer_shapes(model)
    conv = next(n for n in inferred.graph.node if n.op_type == "Conv")
    infos = {vi.name: vi for vi in inferred.graph.value_info}
    dim = infos[conv.input[0]].type.tensor_type.shape.dim[1]
    return dim.dim_value if dim.HasField("dim_value") else None


def _reshape_target(model):
    graph = gs.import_onnx(model)
    reshape = next(n for n in graph.nodes if n.op == "Reshape")
    return reshape.inputs[1]


def test_uniformer_block_channel_dim_becomes_static():
    model = graphs.uniformer_block(channels=64)
    assert _conv_input_channels(model) is None  # computed at runtime: the builder cannot check groups
    aligned, report = align(model)
    [concrete] = report.concrete_dims
    assert concrete.old_target == ["batch", "7", "7", "-1"]
    assert concrete.new_target == [-1, 7, 7, 64]  # the dynamic batch stays dynamic
    assert concrete.needed_by
    assert isinstance(_reshape_target(aligned), gs.Constant)
    assert [n.op_type for n in aligned.graph.node] == ["LayerNormalization", "Reshape", "Transpose", "Conv"]
    assert _conv_input_channels(aligned) == 64
    assert list(aligned.graph.input) == list(model.graph.input)
    assert_exact(model, aligned, dim_values={"batch": 3})


def test_minus_one_with_dynamic_sequence_resolved_for_matmul():
    model = graphs.reshape_dynamic_sequence(hidden=64)
    aligned, report = align(model)
    [concrete] = report.concrete_dims
    assert concrete.new_target == [0, 0, 64]  # batch and sequence copied from the input, hidden fixed
    assert_exact(model, aligned, dim_values={"batch": 2, "sequence": 5})


def test_genuinely_dynamic_dim_is_never_made_static():
    model = graphs.reshape_sequence_needed(hidden=16)
    aligned, report = align(model)
    assert_unchanged(model, aligned)
    [item] = [i for i in report.left_alone if i.op == "Reshape"]
    assert "genuinely dynamic" in item.reason


def test_reshape_nobody_needs_static_is_left_alone():
    b = graphs.ModelBuilder(11)
    x = b.input("x", ["batch", 6, 4])
    b.output(b.op("Relu", [b.op("Reshape", [x, b.const(np.array([0, -1], np.int64))])]))
    model = b.model()
    aligned, report = align(model)
    assert_unchanged(model, aligned)
    assert "no Conv/MatMul/Gemm consumer" in report.left_alone[0].reason


def test_expand_target_from_shape_chain():
    b = graphs.ModelBuilder(12)
    x = b.input("x", ["batch", 1, 8])
    shape = b.op("Shape", [x])
    batch = b.op("Slice", [shape, b.const(np.array([0], np.int64)), b.const(np.array([1], np.int64))])
    target = b.op("Concat", [batch, b.const(np.array([5, 8], np.int64))], axis=0)
    y = b.op("MatMul", [b.op("Expand", [x, target]), b.weight(8, 16)])
    b.output(y)
    model = b.model()
    aligned, report = align(model)
    assert report.concrete_dims[0].new_target == [1, 5, 8]
    assert_exact(model, aligned, dim_values={"batch": 2})


def test_flattened_batch_times_tokens_cancels_symbolically():
    """Reshape(x, [Shape(x)[0] * Shape(x)[1], -1]): the -1 is B*49*64 / (B*49) = 64 although B is dynamic."""
    b = graphs.ModelBuilder(23)
    x = b.input("x", ["batch", 49, 64])
    shape = b.op("Shape", [x])
    pick = lambda i: b.op("Gather", [shape, b.const(np.array([i], np.int64))], axis=0)  # noqa: E731
    rows = b.op("Mul", [pick(0), pick(1)])
    target = b.op("Concat", [rows, b.const(np.array([-1], np.int64))], axis=0)
    b.output(b.op("MatMul", [b.op("Reshape", [x, target]), b.weight(64, 16)]))
    model = b.model()
    aligned, report = align(model)
    [concrete] = report.concrete_dims
    assert concrete.old_target == ["49*batch", "-1"] and concrete.new_target == [-1, 64]
    assert_exact(model, aligned, dim_values={"batch": 3})


def test_expand_to_a_dim_the_input_does_not_carry_is_left_alone():
    b = graphs.ModelBuilder(24)
    x = b.input("x", [1, 8])
    other = b.input("other", ["rows", 8])
    target = b.op("Shape", [other])
    b.output(b.op("Gemm", [b.op("Expand", [x, target]), b.weight(8, 16)]))
    model = b.model()
    aligned, report = align(model)
    assert_unchanged(model, aligned)
    [item] = [i for i in report.left_alone if i.op == "Expand"]
    assert "a dynamic target dim that the input does not carry" in item.reason  # rows: only at runtime


def test_dim_algebra():
    from polygraphy_ext.passes.dim_alignment.symbolic import DimExpr

    batch = DimExpr(1, ("batch",))
    assert (DimExpr(0) * batch).is_static and batch.add(batch, sign=-1) == DimExpr(0)
    assert DimExpr(49 * 64, ("batch",)).divide(DimExpr(49, ("batch",))) == DimExpr(64)
    assert DimExpr(7).divide(batch) is None  # not provably an integer
    assert DimExpr(-7).divide(DimExpr(2)) == DimExpr(-3)  # ONNX integer Div truncates toward zero
    big = 2**62 + 1
    assert DimExpr(big).divide(DimExpr(1)) == DimExpr(big)  # exact beyond float precision

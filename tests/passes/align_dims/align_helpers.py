"""Assertions shared by the align-dims tests: run the pass, check exactness, compare graphs."""

import onnx
import onnx_graphsurgeon as gs

from polygraphy_ext.numerics import compare_models
from polygraphy_ext.passes.dim_alignment.loader import AlignDims


def align(model, **kwargs):
    """(aligned model, report); the aligned model passes the full ONNX checker."""
    loader = AlignDims(model, **kwargs)
    aligned = loader()
    onnx.checker.check_model(aligned, full_check=True)
    return aligned, loader.report


def assert_exact(original, aligned, **kwargs):
    report = compare_models(original, aligned, atol=1e-5, rtol=1e-5, **kwargs)
    assert report.ok, report.summary()


def assert_unchanged(original, aligned):
    """Same nodes, same attributes, same initializer values, same tensor shapes on the graph's inputs/outputs."""
    assert [(n.op_type, list(n.input), list(n.output)) for n in original.graph.node] == [
        (n.op_type, list(n.input), list(n.output)) for n in aligned.graph.node
    ]
    assert [n.attribute for n in original.graph.node] == [n.attribute for n in aligned.graph.node]
    assert {i.name: i for i in original.graph.initializer} == {i.name: i for i in aligned.graph.initializer}
    assert list(original.graph.input) == list(aligned.graph.input)
    assert list(original.graph.output) == list(aligned.graph.output)


def weight_shape(model, node_op, index=0, input_index=1):
    graph = gs.import_onnx(model)
    node = [n for n in graph.nodes if n.op == node_op][index]
    return tuple(node.inputs[input_index].shape)


def ops(model):
    return [n.op_type for n in model.graph.node]

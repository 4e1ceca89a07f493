"""align-dims on torch-exported models (committed; see fixtures/make_fixtures.py), and TensorRT-RTX builds."""

from pathlib import Path

import onnx
import onnx_graphsurgeon as gs
import pytest

import align_graphs as graphs
from align_helpers import align, assert_exact, ops

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load(name):
    return onnx.load(str(FIXTURES / name))


def test_exported_bert_ffn():
    model = load("bert_ffn.onnx")
    aligned, report = align(model)
    [dim] = report.aligned
    assert (dim.old_size, dim.new_size, dim.boundary) == (191, 192, "none")
    assert ops(aligned).count("MatMul") == 2 and "Slice" not in ops(aligned)
    assert_exact(model, aligned, dim_values={"batch": 2, "sequence": 7})


def test_exported_vocab_head():
    model = load("vocab_head.onnx")
    aligned, report = align(model)
    assert [(d.new_size, d.boundary) for d in report.aligned] == [(1008, "slice")]
    assert_exact(model, aligned, dim_values={"batch": 2, "sequence": 3})


def test_exported_odd_convnet():
    model = load("odd_convnet.onnx")
    aligned, report = align(model, max_overhead=30)
    assert sorted((d.old_size, d.new_size) for d in report.aligned) == [(13, 16), (29, 32)]
    graph = gs.import_onnx(aligned)
    depthwise = next(n for n in graph.nodes if n.op == "Conv" and n.attrs.get("group") == 32)
    assert tuple(depthwise.inputs[1].shape) == (32, 1, 3, 3)
    grouped = next(n for n in graph.nodes if n.op == "Conv" and n.attrs.get("group") == 4)
    assert tuple(grouped.inputs[1].shape) == (24, 6, 3, 3)  # never regrouped
    reasons = " | ".join(i.reason for i in report.left_alone)
    assert "3 -> 8" in reasons and "91 -> 96" in reasons  # RGB stem and the 91-class head: too costly
    assert_exact(model, aligned, dim_values={"batch": 2})


def test_exported_uniformer_block():
    model = load("uniformer_block.onnx")
    aligned, report = align(model)
    assert [c.new_target for c in report.concrete_dims] == [[-1, 7, 7, 64]]
    assert_exact(model, aligned, dim_values={"batch": 2})


@pytest.mark.trt
@pytest.mark.slow
@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("bert_ffn.onnx", {}),
        ("vocab_head.onnx", {}),
        ("odd_convnet.onnx", {"max_overhead": 30}),
        ("uniformer_block.onnx", {}),
    ],
)
def test_aligned_fixtures_build_for_sm89(build_engine, name, kwargs):
    aligned, report = align(load(name), **kwargs)
    assert report.changed
    assert len(build_engine(aligned.SerializeToString())) > 0


@pytest.mark.trt
@pytest.mark.slow
@pytest.mark.parametrize(
    "build,kwargs",
    [
        (lambda: graphs.bert_ffn(hidden=64, ffn=191), {}),
        (lambda: graphs.conv_chain(channels=(8, 13, 16), depthwise_after=0, batchnorm=True), {"max_overhead": 30}),
        (lambda: graphs.conv_transpose_chain(), {"max_overhead": 30}),
        (lambda: graphs.gemm_trans_a(k=31, hidden=93), {"max_overhead": 30}),
        (lambda: graphs.stops_at("LayerNormalization"), {"max_overhead": 50}),
        (lambda: graphs.old_opset_head(opset=9), {"max_overhead": 100}),
        (lambda: graphs.uniformer_block(channels=64), {}),
        (lambda: graphs.reshape_dynamic_sequence(hidden=64), {}),
    ],
    ids=["ffn", "depthwise-bn", "conv-transpose", "gemm-trans-a", "slice-before-layernorm", "opset9-pad-slice",
         "uniformer", "reshape-minus-one"],
)
def test_aligned_synthetic_models_build_for_sm89(build_engine, build, kwargs):
    """Every kind of edit (padded weights, grouped depthwise, Slice, Pad, constant targets) parses and builds."""
    aligned, report = align(build(), **kwargs)
    assert report.changed
    assert len(build_engine(aligned.SerializeToString())) > 0

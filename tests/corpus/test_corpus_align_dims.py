"""align-dims on the real-export corpus: every FFN of an odd width is padded at zero cost, exactly.

The expectation comes from the manifest (the source model's Linear/Conv layers, observed during a forward pass):
an odd width that is both some layer's output and some layer's input is an inner width (an FFN's intermediate,
a gated FFN's gate/up), so each layer reading it must absorb a zero-cost padding, and each layer producing it
must be padded. Widths only produced (vocabulary, class heads) or only read (an RGB stem) may be padded with a
Slice/Pad or refused, but never silently: a refusal carries its reason.
"""

import onnx
import pytest

import corpus
from polygraphy_ext.numerics import compare_models
from polygraphy_ext.passes.dim_alignment.loader import AlignDims
from polygraphy_ext.passes.dim_alignment.precision import DEFAULT_PRECISION, multiple_for

MULTIPLE = multiple_for(DEFAULT_PRECISION)
ENTRIES = corpus.entries(has="odd_width")


def inner_widths(entry):
    """Odd widths that one layer produces and another reads: (producing layers, reading layers) per width."""
    layers = [layer for layer in entry.linears if layer.get("type") != "Conv2d" or layer.get("groups", 1) == 1]
    widths = {}
    for width in entry.odd_widths:
        produced = [layer for layer in layers if layer["out"] == width]
        read = [layer for layer in layers if layer["in"] == width]
        if produced and read:
            widths[width] = (len(produced), len(read))
    return widths


def dim_values(entry):
    """Symbolic input dims at the sizes the model was exported with (keeps constrained inputs consistent)."""
    values = {}
    for spec in entry.inputs:
        for dim, size in zip(spec["shape"], entry.record["export_shapes"][spec["name"]]):
            if isinstance(dim, str):
                values.setdefault(dim, int(size))
    return values


def node_count(model, op):
    return sum(node.op_type == op for node in model.graph.node)


@pytest.mark.parametrize("entry", ENTRIES, ids=corpus.ids(ENTRIES))
def test_every_inner_width_pads_at_zero_cost_exactly(entry):
    model = onnx.load(str(entry.path))
    loader = AlignDims(model)
    aligned = loader()
    report = loader.report
    onnx.checker.check_model(aligned)

    for width, (producers, readers) in inner_widths(entry).items():
        padded = [d for d in report.aligned if d.old_size == width and d.side == "output"]
        assert all(d.boundary == "none" for d in padded), [(d.producer, d.slice_reasons) for d in padded]
        assert sum(1 + len(d.padded_with) for d in padded) == producers, f"width {width}: {report.summary()}"
        assert sum(len(d.absorbed_by) for d in padded) == readers, f"width {width}: {report.summary()}"
        assert all(d.new_size == -(-width // MULTIPLE) * MULTIPLE for d in padded)
    inner = set(inner_widths(entry))
    # Where only zero-cost padding happened, no Slice or Pad is added (cleanup may drop an exporter's dead one).
    if all(d.old_size in inner for d in report.aligned):
        assert node_count(aligned, "Slice") <= node_count(model, "Slice")
        assert node_count(aligned, "Pad") <= node_count(model, "Pad")
    # Every other odd width is padded (within the overhead budget) or refused with its reason.
    reasons = " | ".join(item.reason for item in report.left_alone)
    for width in set(entry.odd_widths) - inner:
        padded = any(d.old_size == width for d in report.aligned)
        assert padded or f"{width} -> " in reasons, f"width {width} neither padded nor refused: {report.summary()}"

    if report.changed:
        check = compare_models(model, aligned, dim_values=dim_values(entry))
        assert check.ok, check.summary()


def test_the_corpus_has_inner_odd_widths_of_every_ffn_kind():
    """The parametrized test above is only as good as the corpus: it must hold plain, Conv1D-Gemm and gated FFNs."""
    kinds = {entry.model for entry in ENTRIES if inner_widths(entry)}
    assert {"bert", "gpt2", "llama", "vit", "detr"} <= kinds


# One export of each model whose FFNs are padded, with the exporter forms the padding flows through.
BUILT = [e for e in ENTRIES if e.name in ("bert_ts11", "gpt2_ts14", "gpt2_past_dynamo18", "llama_fp16_ts14",
                                          "detr_dynamo18", "keras_bert_tf2onnx13", "vit_ts16")]


@pytest.mark.trt
@pytest.mark.slow
@pytest.mark.parametrize("entry", BUILT, ids=corpus.ids(BUILT))
def test_aligned_export_builds_for_sm89(build_engine, entry):
    loader = AlignDims(onnx.load(str(entry.path)))
    aligned = loader()
    assert any(d.boundary == "none" for d in loader.report.aligned)
    assert len(build_engine(aligned.SerializeToString())) > 0


COMPOSED = [e for e in ENTRIES if e.name in ("bert_ts14", "gpt2_ts11", "detr_ts16", "keras_bert_tf2onnx17")]


@pytest.mark.parametrize("entry", COMPOSED, ids=corpus.ids(COMPOSED))
def test_fuse_ln_and_align_dims_compose_in_both_orders(entry):
    """Same FFN paddings and same LayerNorms fused whichever runs first, and both end models match the export."""
    from polygraphy_ext.passes.layernorm_fusion.loader import FuseLayerNorm

    def fuse(model):
        loader = FuseLayerNorm(model, infer_shapes=True)
        return loader(), len(loader.report.fused)

    def align(model):
        loader = AlignDims(model)
        out = loader()
        return out, sorted((d.old_size, d.new_size, d.boundary) for d in loader.report.aligned)

    model = onnx.load(str(entry.path))
    fused, fused_first = fuse(model)
    fused_then_aligned, padded_after_fusion = align(fused)
    aligned, padded_first = align(model)
    aligned_then_fused, fused_after_alignment = fuse(aligned)
    assert fused_first == fused_after_alignment
    if entry.exporter == "torchscript":  # tf2onnx's LayerNorm form is fuse-ln's business (issue 13), not ours
        assert fused_first == entry.count("layernorm")
    assert padded_first == padded_after_fusion and all(boundary == "none" for *_, boundary in padded_first)
    for end in (fused_then_aligned, aligned_then_fused):
        check = compare_models(model, end, atol=1e-4, rtol=1e-3, dim_values=dim_values(entry))
        assert check.ok, check.summary()

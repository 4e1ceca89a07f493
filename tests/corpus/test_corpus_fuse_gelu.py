"""fuse-gelu on the real-export corpus: every GELU of the source model fused, each target, 0 wrong.

Expected counts come from the manifest (GELU module calls observed in one forward pass of the source model,
erf and tanh; QuickGELU is not GELU and must stay). Both outputs are run in onnxruntime against the original
on the inputs the model was exported with (plugin nodes through their CPU reference).
"""

import corpus
import numpy as np
import onnx
import onnx_graphsurgeon as gs
import onnxruntime as ort
import pytest

from polygraphy_ext.passes import fuse_gelu
from polygraphy_ext.plugins.ort_reference import lower_plugin_nodes
from polygraphy_ext.shape_inference import infer_shapes

# GELUs the source model calls as functions, which module hooks cannot see: WhisperEncoder applies
# nn.functional.gelu to the outputs of conv1 and conv2 (checked below: those two read the Conv outputs).
FUNCTIONAL_GELUS = {"whisper_encoder": 2}

ENTRIES = corpus.entries()


def _expected(entry):
    return entry.count("gelu") + FUNCTIONAL_GELUS.get(entry.model, 0)


def _fuse(model, target):
    graph = gs.import_onnx(model)
    report = fuse_gelu(graph, target=target)
    return gs.export_onnx(graph, do_type_check=False), report


def _feeds(entry):
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in entry.inputs:
        shape = entry.record["export_shapes"][spec["name"]]
        dtype = np.dtype(spec["dtype"])
        if np.issubdtype(dtype, np.integer):
            # id 0 is valid for every vocabulary and token-type table (RoBERTa's has one row); masks are all ones.
            value = np.ones(shape) if "mask" in spec["name"] else np.zeros(shape)
        else:
            value = rng.standard_normal(shape)
        feeds[spec["name"]] = value.astype(dtype)
    return feeds


def _run(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.mark.parametrize("entry", ENTRIES, ids=corpus.ids(ENTRIES))
def test_every_gelu_is_fused_and_nothing_else(entry):
    model = infer_shapes(onnx.load(entry.path))
    expected = _expected(entry)
    feeds = _feeds(entry)
    want = _run(model, feeds)
    tol = 2e-3 if entry.dtype == "float16" else 2e-5
    for target in ("native", "plugin"):
        fused, report = _fuse(model, target)
        assert len(report.fused) == expected, f"{target}: {report.summary()}"
        assert all(c.approximate == ("tanh" if entry.count("gelu_tanh") else "none") for c in report.fused)
        quick = [c for c in report.candidates if c.pattern == "quick-gelu"]
        assert len(quick) == entry.count("quick_gelu") and not any(c.fused for c in quick)
        if target == "plugin":
            # No bias Add in front of a GELU stays behind (GPT-2's Gemm, Whisper's Conv carry theirs; T5 has none).
            assert not [c.notes for c in report.fused if c.notes], report.to_dict()
            folded = sum(1 for c in report.fused if c.bias)
            fused = lower_plugin_nodes(fused)[0]
        else:
            onnx.checker.check_model(fused)
            assert not expected or fused.opset_import[0].version >= 20
        for w, g in zip(want, _run(fused, feeds)):
            np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), atol=tol, rtol=tol, err_msg=target)
    if entry.model in FUNCTIONAL_GELUS:
        producers = {out: node.op_type for node in model.graph.node for out in node.output}
        after_conv = [c for c in report.fused if producers.get(c.input) == "Conv"]
        assert len(after_conv) == FUNCTIONAL_GELUS[entry.model]
    if entry.model in ("bert", "roberta", "vit", "swin", "whisper_encoder"):
        assert folded == entry.count("gelu"), report.summary()  # their FFN Linear's bias Add


def test_corpus_holds_both_gelu_forms_and_quick_gelu():
    kinds = {kind for entry in ENTRIES for kind in ("gelu_erf", "gelu_tanh", "quick_gelu") if entry.count(kind)}
    assert kinds == {"gelu_erf", "gelu_tanh", "quick_gelu"}


@pytest.mark.parametrize("target", ["native", "plugin"])
@pytest.mark.parametrize("gelu_first", [False, True], ids=["ln-then-gelu", "gelu-then-ln"])
def test_composes_with_fuse_ln(target, gelu_first):
    """Either order fuses the same; both plugin kinds share one domain; the result runs as the original does."""
    from polygraphy_ext.passes import fuse_layernorm

    (entry,) = corpus.entries(model="bert", exporter="torchscript", opset=14, dtype="float32")
    model = infer_shapes(onnx.load(entry.path))
    graph = gs.import_onnx(model)
    ln_options = {"target": target, "skip": target == "plugin"}
    passes = [lambda g: fuse_gelu(g, target=target), lambda g: fuse_layernorm(g, **ln_options)]
    reports = [run(graph) for run in (passes if gelu_first else passes[::-1])]
    assert sorted(len(r.fused) for r in reports) == sorted([entry.count("gelu"), entry.count("layernorm")])
    fused = gs.export_onnx(graph, do_type_check=False)
    ops = [n.op_type for n in fused.graph.node]
    assert not {"Erf", "ReduceMean"} & set(ops)
    if target == "plugin":
        assert {n.domain for n in fused.graph.node if n.op_type in ("BiasGelu", "SkipLayerNorm", "LayerNorm")} == {"polygraphy_ext"}
        fused = lower_plugin_nodes(fused)[0]
    feeds = _feeds(entry)
    for w, g in zip(_run(model, feeds), _run(fused, feeds)):
        np.testing.assert_allclose(g, w, atol=2e-5, rtol=2e-5)

"""fuse-ln on the real-export corpus (tests/corpus, docs/corpus.md): exact counts, equivalence, TensorRT-RTX builds.

For every file whose source model calls a LayerNorm or an RMSNorm:

- ``--target native --rms`` and ``--target plugin --rms`` (+ ``--skip`` where the source model adds a residual in
  front of its LayerNorms) end with exactly the norms the source model called (the manifest's counts, observed on
  the model itself), decomposed chains fused and existing native nodes kept or converted, nothing refused;
- the fused model gives the original's outputs in onnxruntime on inputs shaped as at export (plugin nodes run
  through the plugin library's CPU reference);
- a second native run changes nothing and reports every norm as already native.

TensorRT-RTX engine builds (SM89, on CPU) cost about 8 s each, so CI builds a representative subset (one per
exporter form, native and plugin, LayerNorm and RMSNorm); ``PGX_CORPUS_BUILD_ALL=1 python -m pytest
tests/corpus/test_corpus_fuse_ln.py -k builds`` builds both targets of every file (docs/fuse-ln.md has the table).
"""

import os
from collections import Counter

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import onnxruntime as ort
import pytest

import corpus
from polygraphy_ext.passes import fuse_layernorm
from polygraphy_ext.plugins.ort_reference import lower_plugin_nodes
from polygraphy_ext.shape_inference import infer_shapes

NORM_ENTRIES = [e for e in corpus.entries() if e.count("layernorm") or e.count("rmsnorm")]

BUILD_IN_CI = {
    ("bert_dynamo18", "native"), ("gpt2_ts16", "native"), ("llama_ts14", "native"), ("vit_ts16", "native"),
    ("swin_ts14", "native"), ("bert_ts14", "plugin"), ("roberta_dynamo18", "plugin"),
    ("llama_fp16_dynamo18", "plugin"),
}
BUILD_ALL = bool(os.environ.get("PGX_CORPUS_BUILD_ALL"))

NATIVE_OPS = {"LayerNormalization": "layernorm", "RMSNormalization": "rmsnorm"}
PLUGIN_OPS = {"LayerNorm": "layernorm", "SkipLayerNorm": "layernorm", "RMSNorm": "rmsnorm"}


def _options(entry, target):
    options = {"target": target, "rms": True}
    if target == "plugin" and entry.count("residual_add_layernorm"):
        options["skip"] = True
    return options


_LOADED = {}


def _load(entry):
    """The model as the CLI sees it: Polygraphy's shape inference first (cached: several tests use each file)."""
    if entry.file not in _LOADED:
        _LOADED[entry.file] = infer_shapes(onnx.load(str(entry.path)))
    return _LOADED[entry.file]


def _fuse(model, **options):
    graph = gs.import_onnx(model)
    report = fuse_layernorm(graph, **options)
    return gs.export_onnx(graph, do_type_check=False), report


def _norm_counts(model, ops):
    counts = Counter()
    for node in model.graph.node:
        if node.op_type in ops:
            counts[ops[node.op_type]] += 1
    return counts


def _feeds(entry):
    """Inputs shaped as at export (which satisfies the input constraints: GPT-2 past, Whisper frames, DETR mask)."""
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in entry.inputs:
        name, dtype = spec["name"], np.dtype(spec["dtype"])
        shape = entry.record["export_shapes"][name]
        if dtype.kind == "f":
            feeds[name] = rng.standard_normal(shape).astype(dtype)
        elif "mask" in name:
            feeds[name] = np.ones(shape, dtype)
        elif "type" in name or "position" in name:
            feeds[name] = np.zeros(shape, dtype)  # RoBERTa has a single token type
        else:
            feeds[name] = rng.integers(0, 4, size=shape).astype(dtype)  # ids: every vocabulary has these
    return feeds


def _run(model, feeds):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def _assert_same_outputs(entry, original, fused):
    # fp16 exports round every activation to 11 bits: the fused norms (fp32 statistics) differ by that.
    tol = 2e-2 if entry.dtype == "float16" else 1e-4
    feeds = _feeds(entry)
    expected, actual = _run(original, feeds), _run(fused, feeds)
    for name, want in expected.items():
        got = actual[name].astype(np.float64)
        want = want.astype(np.float64)
        assert got.shape == want.shape, name
        worst = float(np.max(np.abs(got - want) - tol * np.abs(want))) if want.size else 0.0
        assert worst <= tol, f"{entry.file} output {name}: max error beyond tolerance {worst:.3g} (atol=rtol={tol})"


@pytest.mark.parametrize("entry", NORM_ENTRIES, ids=corpus.ids(NORM_ENTRIES))
def test_native_target_fuses_every_norm_exactly(entry):
    model = _load(entry)
    fused, report = _fuse(model, **_options(entry, "native"))
    assert not report.rejected, report.summary()
    assert _norm_counts(fused, NATIVE_OPS) == Counter(layernorm=entry.count("layernorm"), rmsnorm=entry.count("rmsnorm")) - Counter()
    assert len(report.fused) + report.already_native == entry.count("layernorm") + entry.count("rmsnorm")
    onnx.checker.check_model(fused, full_check=True)
    _assert_same_outputs(entry, model, fused)
    again, second = _fuse(fused, **_options(entry, "native"))
    assert not second.fused and second.already_native == len(report.fused) + report.already_native


@pytest.mark.parametrize("entry", NORM_ENTRIES, ids=corpus.ids(NORM_ENTRIES))
def test_plugin_target_fuses_every_norm_exactly(entry):
    model = _load(entry)
    options = _options(entry, "plugin")
    fused, report = _fuse(model, **options)
    assert not report.rejected and not report.already_native, report.summary()
    counts = _norm_counts(fused, PLUGIN_OPS)
    assert counts == Counter(layernorm=entry.count("layernorm"), rmsnorm=entry.count("rmsnorm")) - Counter()
    if options.get("skip"):
        skips = sum(node.op_type == "SkipLayerNorm" for node in fused.graph.node)
        # Every residual Add in front of a LayerNorm is folded (RoBERTa's embedding sum is one more).
        assert skips >= entry.count("residual_add_layernorm"), report.summary()
    onnx.checker.check_model(fused, full_check=True)
    lowered, _ = lower_plugin_nodes(fused)
    _assert_same_outputs(entry, model, lowered)


def _build_cases():
    cases = []
    for entry in NORM_ENTRIES:
        for target in ("native", "plugin"):
            if BUILD_ALL or (entry.name, target) in BUILD_IN_CI:
                cases.append(pytest.param(entry, target, id=f"{entry.name}-{target}", marks=pytest.mark.slow))
    return cases


@pytest.mark.parametrize("entry, target", _build_cases())
def test_fused_model_builds_with_tensorrt_rtx(entry, target, build_engine, request):
    libraries = [request.getfixturevalue("plugin_library")] if target == "plugin" else []
    fused, report = _fuse(_load(entry), **_options(entry, target))
    assert report.fused or report.already_native
    assert len(build_engine(fused.SerializeToString(), plugin_libraries=libraries)) > 0


def test_the_ci_build_subset_names_real_corpus_files():
    names = {e.name for e in NORM_ENTRIES}
    assert {name for name, _ in BUILD_IN_CI} <= names

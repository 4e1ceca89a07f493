"""The committed corpus is what its manifest says: every file present, unchanged, valid, at its declared opset."""

import hashlib

import onnx
import pytest

import corpus

ENTRIES = corpus.entries()


def test_manifest_lists_files_and_only_real_ones():
    assert ENTRIES, "the manifest lists no file"
    on_disk = {p.name for p in corpus.MODELS_DIR.glob("*.onnx")}
    listed = {e.file for e in ENTRIES}
    assert on_disk == listed, f"not in manifest: {sorted(on_disk - listed)}; missing: {sorted(listed - on_disk)}"
    for failure in corpus.failures():  # a failed export is recorded with the exporter's message
        assert failure["model"] and failure["exporter"] and failure["error"].strip()


def test_corpus_stays_small_enough_to_travel():
    sizes = {e.file: e.path.stat().st_size for e in ENTRIES}
    assert max(sizes.values()) < 5 * 2**20, max(sizes, key=sizes.get)
    assert sum(sizes.values()) < 15 * 2**20


@pytest.mark.parametrize("entry", ENTRIES, ids=corpus.ids(ENTRIES))
def test_file_matches_manifest(entry):
    data = entry.path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry.record["sha256"], "file changed without regenerating the manifest"
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model, full_check=True)
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    assert opsets["ai.onnx"] == entry.opset
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    graph_inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    assert graph_inputs == [i["name"] for i in entry.inputs]
    assert [o.name for o in model.graph.output] == [o["name"] for o in entry.outputs]
    want_elem = onnx.TensorProto.FLOAT16 if entry.dtype == "float16" else onnx.TensorProto.FLOAT
    float_inits = {t.data_type for t in model.graph.initializer if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)}
    assert want_elem in float_inits


def test_filters_select_by_source_model_counts():
    rms = corpus.entries(has="rmsnorm")
    assert rms and {e.model for e in rms} >= {"t5_encoder", "llama"}
    assert all(e.counts["rmsnorm"] > 0 for e in rms)
    quick = corpus.entries(has="quick_gelu")
    assert all(e.count("gelu") == 0 for e in quick), "QuickGELU is counted apart from GELU"
    assert all(e.exporter == "dynamo" and e.opset >= 18 for e in corpus.entries(exporter="dynamo"))
    assert all(e.odd_widths and all(w % 8 for w in e.odd_widths) for e in corpus.entries(has="odd_width"))

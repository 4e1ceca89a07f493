"""Manifest records, shared by the generators (torch: make_corpus.py, TensorFlow/Keras: make_keras.py).

Each generator runs in its own environment (torch and TensorFlow do not share one here) and owns the records of
its exporters; ``write_manifest`` replaces only those, so either can be rerun alone.
"""

import hashlib
import json
import os
from pathlib import Path

import onnx

CORPUS_DIR = Path(__file__).resolve().parent
MODELS_DIR = CORPUS_DIR / "models"
MANIFEST_PATH = CORPUS_DIR / "manifest.json"
ALIGN_MULTIPLE = 8  # odd_widths: Linear/Conv widths that are not a multiple of this (fp16 Tensor Cores)


def dims(value_info):
    shape = value_info.type.tensor_type.shape
    return [d.dim_param if d.HasField("dim_param") else (d.dim_value if d.HasField("dim_value") else None) for d in shape.dim]


def io(values):
    return [
        {
            "name": v.name,
            "shape": dims(v),
            "dtype": onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name,
        }
        for v in values
    ]


def graph_inputs(model):
    initializers = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def default_opset(model):
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def first_line(err):
    """An exporter's own message in one line (the dynamo exporter puts it under '## Exception summary')."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    if "## Exception summary" in lines:
        lines = lines[lines.index("## Exception summary") + 1 :] or lines
    return f"{type(err).__name__}: {lines[0] if lines else ''}"[:400]


def odd_widths(linears, multiple=ALIGN_MULTIPLE):
    return sorted({w for lin in linears for w in (lin["in"] // lin.get("groups", 1), lin["out"]) if w % multiple})


def file_record(path, onnx_model, **fields):
    """The manifest record of one written file: what the file declares, plus the generator's fields."""
    return dict(
        file=Path(path).name,
        opset=default_opset(onnx_model),
        bytes=Path(path).stat().st_size,
        sha256=sha256(path),
        inputs=io(graph_inputs(onnx_model)),
        outputs=io(onnx_model.graph.output),
        **json.loads(json.dumps(fields, default=str)),
    )


def write_manifest(exporters, files, failures, versions, keep_models=()):
    """Replace the records of ``exporters`` (except those of ``keep_models``) with ``files``/``failures``."""
    old = json.loads(MANIFEST_PATH.read_text()) if MANIFEST_PATH.exists() else {}

    def kept(rec):
        return rec["exporter"] not in exporters or rec["model"] in keep_models

    all_files = [r for r in old.get("files", []) if kept(r)] + files
    all_failures = [r for r in old.get("failures", []) if kept(r)] + failures
    order = {"torchscript": 0, "dynamo": 1, "tf2onnx": 2}

    def key(r):
        return (order.get(r["exporter"], 9) // 2, r["model"], r["dtype"] != "float32", order.get(r["exporter"], 9), r["opset_requested"])

    listed = {r["file"] for r in all_files}
    for stale in MODELS_DIR.glob("*.onnx"):
        if stale.name not in listed:
            stale.unlink()
    manifest = {
        "generators": "tests/corpus/make_corpus.py (torch), tests/corpus/make_keras.py (TensorFlow/Keras)",
        "versions": {**{k: v for k, v in old.get("versions", {}).items() if isinstance(v, dict)}, **versions},
        "files": sorted(all_files, key=key),
        "failures": sorted(all_failures, key=key),
    }
    tmp = MANIFEST_PATH.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, MANIFEST_PATH)
    total = sum(r["bytes"] for r in manifest["files"])
    print(f"{len(manifest['files'])} files ({total / 2**20:.2f} MiB), {len(manifest['failures'])} failed exports -> {MANIFEST_PATH}")

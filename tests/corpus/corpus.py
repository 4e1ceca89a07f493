"""The real-export corpus, for tests: which ONNX files exist and what the source model held.

Hugging Face models (BERT, RoBERTa, GPT-2 with and without past, ViT, Swin, DETR, T5 encoder, LLaMA, CLIP,
Whisper encoder) built from tiny configs with random weights and exported by ``torch.onnx.export`` exactly as
users do: the TorchScript exporter at opsets 11, 14 and 16 and the dynamo exporter at 18, plus fp16 exports; and
a Keras model converted by tf2onnx. ``make_corpus.py`` / ``make_keras.py`` write the files and ``manifest.json`` (counts observed on the source model during one forward
pass, never typed by hand); docs/corpus.md describes every field. This module needs neither torch nor
transformers::

    import corpus                                       # tests/corpus is on pytest's pythonpath
    for entry in corpus.entries(exporter="torchscript", has="layernorm"):
        model = onnx.load(entry.path)
        assert fused == entry.counts["layernorm"]

``has`` keeps entries whose source model calls at least one module of that kind: ``layernorm``, ``rmsnorm``,
``gelu`` (any GELU: erf or tanh, never QuickGELU), ``gelu_erf``, ``gelu_tanh``, ``quick_gelu``,
``residual_add_layernorm`` or ``odd_width`` (a Linear/Conv width that is not a multiple of 8).
"""

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

CORPUS_DIR = Path(__file__).resolve().parent
MODELS_DIR = CORPUS_DIR / "models"
MANIFEST_PATH = CORPUS_DIR / "manifest.json"

_GELU_KINDS = ("gelu_erf", "gelu_tanh")


@dataclass(frozen=True)
class Entry:
    """One exported file and what its source model computed."""

    file: str  # file name under models/
    model: str  # corpus model name, e.g. "bert", "gpt2_past"
    hf_class: str  # the transformers class that was exported (or the Keras model)
    exporter: str  # "torchscript", "dynamo" or "tf2onnx"
    opset: int  # default-domain opset of the file (read from the file)
    dtype: str  # "float32" or "float16"
    counts: dict  # module calls in one forward pass: layernorm, rmsnorm, gelu_erf, gelu_tanh, quick_gelu, ...
    linears: tuple  # ({"name", "type", "in", "out", ...}, ...) of every Linear/Conv1D/Conv called
    odd_widths: tuple  # sorted Linear/Conv widths that are not a multiple of 8
    inputs: tuple  # ({"name", "shape", "dtype"}, ...) as in the ONNX graph (symbolic dims are strings)
    outputs: tuple
    input_constraints: Optional[str]  # how inputs must relate (e.g. GPT-2 past), None when free
    record: dict  # the whole manifest record, for fields not lifted above

    @property
    def path(self) -> Path:
        return MODELS_DIR / self.file

    @property
    def name(self) -> str:
        """A short id for test parametrization: the file name without .onnx."""
        return self.file[: -len(".onnx")]

    def count(self, kind: str) -> int:
        """Module calls of one kind (0 when none). ``residual_add_layernorm`` is only recorded where the
        architecture fixes it (post-LN BERT-style models): ``counts.get(...)`` is None where it was not derived."""
        if kind == "gelu":
            return sum(self.counts.get(k, 0) for k in _GELU_KINDS)
        if kind == "odd_width":
            return len(self.odd_widths)
        return self.counts.get(kind, 0)


@lru_cache(maxsize=1)
def manifest() -> dict:
    with open(MANIFEST_PATH) as f:
        return json.load(f)


def _as_set(value) -> Optional[set]:
    if value is None:
        return None
    return {value} if isinstance(value, (str, int)) else set(value)


def entries(
    model=None,
    exporter=None,
    opset=None,
    dtype=None,
    has: Optional[str] = None,
) -> list:
    """Corpus entries, filtered: each filter is a value or a collection of accepted values (None accepts all)."""
    models, exporters, opsets, dtypes = _as_set(model), _as_set(exporter), _as_set(opset), _as_set(dtype)
    selected = []
    for rec in manifest()["files"]:
        entry = Entry(
            file=rec["file"],
            model=rec["model"],
            hf_class=rec["hf_class"],
            exporter=rec["exporter"],
            opset=rec["opset"],
            dtype=rec["dtype"],
            counts=rec["counts"],
            linears=tuple(rec["linears"]),
            odd_widths=tuple(rec["odd_widths"]),
            inputs=tuple(rec["inputs"]),
            outputs=tuple(rec["outputs"]),
            input_constraints=rec.get("input_constraints"),
            record=rec,
        )
        if models is not None and entry.model not in models:
            continue
        if exporters is not None and entry.exporter not in exporters:
            continue
        if opsets is not None and entry.opset not in opsets:
            continue
        if dtypes is not None and entry.dtype not in dtypes:
            continue
        if has is not None and entry.count(has) == 0:
            continue
        selected.append(entry)
    return selected


def failures() -> list:
    """Exports that failed: ({"model", "exporter", "opset", "dtype", "error"}, ...), the exporter's own message."""
    return list(manifest()["failures"])


def ids(selected: Sequence[Entry]) -> list:
    """Readable test ids: ``pytest.mark.parametrize("entry", sel, ids=corpus.ids(sel))``."""
    return [e.name for e in selected]

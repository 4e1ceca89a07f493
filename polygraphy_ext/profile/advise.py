"""``rank-profile --advise``: from where the time goes to what to run next.

Each rule reads a ranked profile (and, when given, the joined layer information) and returns at most one
:class:`Finding`: what it saw, the layers and time share that show it, and the command that addresses it. Rules are
deliberately conservative: a finding must hold on any engine that shows it, so every rule has a time-share
threshold below which it stays silent, and rules that need layer types, dimensions or data types stay silent (and
say so in ``skipped``) without a detailed ``--layer-info``. The thresholds and their reasons are documented in
docs/rank-profile.md ("--advise").
"""

import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from polygraphy_ext.profile.families import (
    ATTENTION,
    DLA_TRANSFER,
    FUSED_SEPARATOR,
    GEMM_CONV,
    LAYERNORM,
    MYELIN,
    QDQ,
    REFORMAT,
    SHAPE_COPY,
)
from polygraphy_ext.profile.ranking import RankedLayer, Ranking

# A finding is reported only when the layers behind it take at least this share of the profiled time: below it, the
# fix is not worth a rebuild, and the rule would fire on incidental layers of healthy engines.
DECOMPOSED_NORM_MIN_SHARE = 0.02
MISALIGNED_GEMM_MIN_SHARE = 0.02
REFORMAT_MIN_SHARE = 0.05
FP32_MIN_SHARE = 0.05
# ... in an engine whose compute runs at least this share in FP16/BF16/INT8/FP8.
FP32_ENGINE_REDUCED_SHARE = 0.30
UNFUSED_ATTENTION_MIN_SHARE = 0.05
# Launch-bound: kernels this short are dominated by launch overhead (a few microseconds on current GPUs).
TINY_KERNEL_MS = 0.003
TINY_KERNELS_MIN_COUNT = 30
TINY_KERNELS_MIN_SHARE = 0.25

# Tensor Core multiples by the precision a GEMM/conv runs in (what align-dims pads to).
TENSOR_CORE_MULTIPLES = {"FP16": 8, "BF16": 8, "INT8": 16, "FP8": 16}
# Padding a width below twice its multiple at least doubles its work: never worth advising.
_MIN_ALIGNABLE = 2
_REDUCED = frozenset(["FP16", "BF16", "INT8", "FP8", "INT4", "FP4"])
_NON_COMPUTE_FAMILIES = frozenset([REFORMAT, SHAPE_COPY, QDQ, DLA_TRANSFER])
_NON_FLOAT = frozenset(["INT32", "INT64", "BOOL"])

# Kernel-name markers of Tensor Core GEMM/conv tactics (xmma/hmma/imma families, the mma instruction shapes,
# Hopper's wgmma/gmma, TF32 kernels) and of CUDA-core ones.
_TENSOR_CORE_TACTIC = re.compile(r"xmma|hmma|imma|wgmma|gmma|tensor|884|1688|16816|\btf32|_tf32|s16816|h16816|i8816")
_CUDA_CORE_TACTIC = re.compile(r"sgemm|gemv|scudnn|fp32_cuda|_simt|\bsimt\b")

# Module names that say LayerNorm/RMSNorm outright ...
_LN_MODULE = re.compile(
    r"^(.*?(?:layer_?norm(?:alization)?|rms_?norm|input_layernorm|post_attention_layernorm|\bln(?:_?\d+|_f)?|_ln)"
    r"[^/]*)/",
    re.IGNORECASE,
)
# ... and generic ones (DETR's norm1, timm's norm) that count only when their ops show the statistics.
_NORM_MODULE = re.compile(r"^(.*?/(?:norm\d*|\w+_norm\d*))/", re.IGNORECASE)
_OP_TOKEN = re.compile(r"([a-z]+)(?:_\d+)?\)*$")
_WRAPPERS = re.compile(r"^(?:PWN\(|\{ForeignNode\[)+")


@dataclass
class Finding:
    rule: str  # stable id: decomposed-norm, misaligned-gemm, reformat, fp32-layers, unfused-attention, tiny-kernels
    title: str
    family: Optional[str]  # the family whose time it explains, for --diff verdicts
    share: float
    time_ms: float  # per iteration
    summary: str  # one line: what was seen
    layers: List[str] = field(default_factory=list)  # the evidence, slowest first
    evidence: List[str] = field(default_factory=list)  # further lines of evidence
    command: str = ""  # what to run next
    details: Dict[str, object] = field(default_factory=dict)  # machine-readable evidence for JSON

    def to_dict(self) -> dict:
        return {
            "rule": self.rule,
            "title": self.title,
            "family": self.family,
            "share": self.share,
            "average_ms": self.time_ms,
            "summary": self.summary,
            "layers": self.layers,
            "evidence": self.evidence,
            "command": self.command,
            "details": self.details,
        }


@dataclass
class Advice:
    findings: List[Finding]
    skipped: List[str]  # rules that could not run, with why
    checked: List[str]  # every rule id that ran

    def rule_ids(self) -> List[str]:
        return [f.rule for f in self.findings]


@dataclass
class ModelFacts:
    """What our passes would do on the engine's ONNX model (``--model``), for findings to quote."""

    source: str
    norm_chains: Optional[int] = None  # chains fuse-ln would fuse (any target)
    norm_candidates: Optional[int] = None
    norm_already_native: int = 0
    pad_dims: List[Tuple[str, str, int, int]] = field(default_factory=list)  # (node, op, old, new)
    align_multiple: Optional[int] = None
    notes: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Context:
    ranking: Ranking
    facts: Optional[ModelFacts]
    engine_inputs: frozenset  # names of the engine's input tensors (from layer info), never padded


def _share(rows: Sequence[RankedLayer]) -> float:
    return sum(row.share for row in rows)


def _avg_ms(rows: Sequence[RankedLayer]) -> float:
    return sum(row.layer.average_ms for row in rows)


def _names(rows: Sequence[RankedLayer], limit: int = 8) -> List[str]:
    return [row.layer.name for row in sorted(rows, key=lambda r: -r.share)[:limit]]


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


# ---------------------------------------------------------------- decomposed normalization


def _first_piece(name: str) -> str:
    return _WRAPPERS.sub("", FUSED_SEPARATOR.split(name)[0]).split(", ")[0]


def _norm_module(name: str) -> Tuple[Optional[str], bool]:
    """(the norm module a layer belongs to, whether its name alone says LayerNorm/RMSNorm)."""
    first = _first_piece(name)
    match = _LN_MODULE.match(first)
    if match:
        return match.group(1), True
    match = _NORM_MODULE.match(first)
    return (match.group(1), False) if match else (None, False)


def _op_words(name: str) -> set:
    """Op names of every fused piece, without module paths and numeric suffixes: {"reducemean", "sub", ...}."""
    words = set()
    for piece in re.split(r" \+ |[\x1e\x1f]|, |\(", name):
        match = _OP_TOKEN.search(piece.rsplit("/", 1)[-1].strip().lower())
        if match:
            words.add(match.group(1))
    return words


def _computes_statistics(rows: Sequence[RankedLayer]) -> bool:
    """A mean and a square root (or power) among the rows' ops: the arithmetic of a norm, not of a BatchNorm."""
    words = set().union(*(_op_words(row.layer.name) for row in rows))
    return bool(words & {"reducemean", "mean"}) and bool(words & {"sqrt", "rsqrt", "pow", "reciprocal"})


_FUSED_NORM_RULES = ("type:layernorm", "layernorm-op")


def _norms_by_module(ranking: Ranking) -> Dict[str, List[RankedLayer]]:
    modules: Dict[str, List[RankedLayer]] = {}
    named, fused = set(), set()
    for row in ranking.rows:
        if row.family in (GEMM_CONV, ATTENTION, MYELIN):
            continue
        module, says_norm = _norm_module(row.layer.name)
        if module is None:
            continue
        # A normalization layer (INormalizationLayer) or a Myelin kernel that computes the whole norm is fused
        # already; so is a row whose op is LayerNormalization itself.
        if row.rule.id in _FUSED_NORM_RULES or row.rule.id.startswith("myelin-kernel"):
            fused.add(module)
            continue
        modules.setdefault(module, []).append(row)
        if says_norm:
            named.add(module)
    return {
        module: rows
        for module, rows in modules.items()
        if len(rows) >= 2 and module not in fused and (module in named or _computes_statistics(rows))
    }


def _norms_by_ops(ranking: Ranking, taken: set) -> List[List[RankedLayer]]:
    """Decomposed norms in engines whose layer names carry no module path (``ReduceMean_23``, ``Sqrt_30``):
    a ReduceMean, a second ReduceMean and a Sqrt/Pow within a few consecutive layers, with no GEMM between."""
    in_order = [row for row in sorted(ranking.rows, key=lambda r: r.layer.index) if id(row) not in taken]
    chains, position = [], 0
    while position < len(in_order):
        if "reducemean" not in _op_words(in_order[position].layer.name):
            position += 1
            continue
        window = []
        for row in in_order[position : position + 7]:
            if row.family in (GEMM_CONV, ATTENTION, MYELIN) or row.rule.id in _FUSED_NORM_RULES:
                break
            window.append(row)
            means = sum("reducemean" in _op_words(r.layer.name) for r in window)
            if means >= 2 and _op_words(row.layer.name) & {"sqrt", "rsqrt"}:
                chains.append(window)
                break
        position += len(window) if chains and chains[-1] is window else 1
    return chains


def _decomposed_norm(ctx: _Context) -> Optional[Finding]:
    ranking, facts = ctx.ranking, ctx.facts
    split = _norms_by_module(ranking)
    taken = {id(row) for rows in split.values() for row in rows}
    for number, chain in enumerate(_norms_by_ops(ranking, taken)):
        split[f"unnamed norm {number + 1} (from {chain[0].layer.name})"] = chain
    rows = [row for rows in split.values() for row in rows]
    share = _share(rows)
    if not split or share < DECOMPOSED_NORM_MIN_SHARE:
        return None
    fewest, most = min(map(len, split.values())), max(map(len, split.values()))
    evidence = [
        f"{len(split)} norm module(s) each run as {fewest if fewest == most else f'{fewest}-{most}'} separate "
        f"reduce/elementwise layers instead of one normalization kernel"
    ]
    command = "polygraphy surgeon fuse-ln MODEL.onnx -o MODEL.fused.onnx"
    if facts is not None and facts.norm_chains is not None:
        evidence.append(
            f"fuse-ln on {facts.source}: would fuse {facts.norm_chains} of {facts.norm_candidates} chain(s)"
            + (f", {facts.norm_already_native} already native" if facts.norm_already_native else "")
        )
        evidence += [note for note in facts.notes if note.startswith("fuse-ln")]
        command = f"polygraphy surgeon fuse-ln {facts.source} -o fused.onnx --rms"
    return Finding(
        rule="decomposed-norm",
        title="decomposed normalization",
        family=LAYERNORM,
        share=share,
        time_ms=_avg_ms(rows),
        summary=f"{len(rows)} layers of {len(split)} LayerNorm/RMSNorm module(s) take {_pct(share)} of the time",
        layers=_names(rows),
        evidence=evidence + [f"e.g. module {next(iter(split))}"],
        command=command + "  # then rebuild and profile again (--target plugin for our TensorRT plugins)",
        details={"modules": sorted(split), "layer_count": len(rows)},
    )


# ---------------------------------------------------------------- misaligned GEMM/conv


def _gemm_kind(row: RankedLayer) -> Optional[str]:
    """'gemm' (dims in the last axis), 'conv' (channels in axis 1), or None when not a GEMM/conv."""
    info = row.info
    if info is None or info.on_dla or not (info.inputs and info.outputs):
        return None
    layer_type = (info.layer_type or "").lower()
    if any(k in layer_type for k in ("gemm", "matrixmultiply", "fullyconnected", "matmul")):
        return "gemm"
    if "conv" in layer_type or "deconv" in layer_type:
        return "conv"
    if row.family == GEMM_CONV and not layer_type:
        return "gemm"
    return None


def _misaligned(row: RankedLayer, input_names: frozenset) -> List[Tuple[str, int, int]]:
    """(which dim, size, multiple) of the GEMM/conv dims of this layer that are off the Tensor Core multiple."""
    kind = _gemm_kind(row)
    if kind is None:
        return []
    info = row.info
    precision = info.precision
    multiple = TENSOR_CORE_MULTIPLES.get(precision or "")
    if multiple is None:
        return []
    x, y = info.inputs[0], info.outputs[0]
    if kind == "gemm":
        dims = [("K", x.dims[-1] if len(x.dims) >= 2 else None), ("N", y.dims[-1] if len(y.dims) >= 2 else None)]
    else:
        # Vectorized layouts ("channel % 8 == 0", CHW32, HWC8) already pad channels in memory: nothing to gain.
        if "%" in x.format or "%" in y.format or re.search(r"chw\d|hwc\d", (x.format + y.format).lower()):
            return []
        if info.groups and info.groups > 1:
            return []  # grouped/depthwise convs are not Tensor Core bound by their channel count
        c_in = x.dims[1] if len(x.dims) >= 3 and x.name not in input_names else None
        c_out = info.output_maps or (y.dims[1] if len(y.dims) >= 3 else None)
        dims = [("C_in", c_in), ("C_out", c_out)]
    return [
        (label, size, multiple)
        for label, size in dims
        if isinstance(size, int) and size >= _MIN_ALIGNABLE * multiple and size % multiple
    ]


def _tactic_note(row: RankedLayer) -> str:
    tactic = (row.info.tactic or "") if row.info else ""
    lower = tactic.lower()
    if not tactic:
        return ""
    if _TENSOR_CORE_TACTIC.search(lower):
        return f"tactic {tactic} (Tensor Core)"
    if _CUDA_CORE_TACTIC.search(lower) or "gemm" in lower or "conv" in lower:
        return f"tactic {tactic} shows no Tensor Core kernel"
    return f"tactic {tactic}"


def _misaligned_gemm(ctx: _Context) -> Optional[Finding]:
    ranking, facts = ctx.ranking, ctx.facts
    hits = []
    for row in ranking.rows:
        dims = _misaligned(row, ctx.engine_inputs)
        if dims:
            hits.append((row, dims))
    rows = [row for row, _ in hits]
    share = _share(rows)
    if not hits or share < MISALIGNED_GEMM_MIN_SHARE:
        return None
    evidence = []
    for row, dims in sorted(hits, key=lambda hit: -hit[0].share)[:6]:
        text = ", ".join(f"{label}={size} (not a multiple of {m})" for label, size, m in dims)
        note = _tactic_note(row)
        evidence.append(f"{row.layer.name}: {row.info.precision} {text}" + (f"; {note}" if note else ""))
    precision = rows[0].info.precision.lower()
    command = f"polygraphy surgeon align-dims MODEL.onnx -o MODEL.aligned.onnx --precision {precision}"
    if facts is not None and facts.align_multiple is not None:
        if facts.pad_dims:
            shown = ", ".join(f"{node} {old}->{new}" for node, _, old, new in facts.pad_dims[:6])
            more = f" and {len(facts.pad_dims) - 6} more" if len(facts.pad_dims) > 6 else ""
            evidence.append(f"align-dims on {facts.source} would pad {len(facts.pad_dims)} dim(s): {shown}{more}")
        else:
            evidence.append(f"align-dims on {facts.source} finds nothing it can pad exactly (see its report)")
        command = f"polygraphy surgeon align-dims {facts.source} -o aligned.onnx --precision {precision} --check"
    if facts is not None:
        evidence += [note for note in facts.notes if note.startswith("align-dims")]
    sizes = sorted({size for _, dims in hits for _, size, _ in dims})
    return Finding(
        rule="misaligned-gemm",
        title="GEMM/conv dims off Tensor Core multiples",
        family=GEMM_CONV,
        share=share,
        time_ms=_avg_ms(rows),
        summary=f"{len(rows)} GEMM/conv layer(s) with dims {', '.join(map(str, sizes[:8]))} off the Tensor Core "
        f"multiple take {_pct(share)} of the time",
        layers=_names(rows),
        evidence=evidence,
        command=command,
        details={"dims": sizes},
    )


# ---------------------------------------------------------------- reformats


def _layout(tensor) -> str:
    """Layout and type of a tensor as one phrase, whichever schema described it."""
    fmt, precision = tensor.format or "", tensor.precision or ""
    if precision and precision.lower() not in fmt.lower():
        fmt = f"{fmt} {precision}".strip()
    return fmt or "?"


def _reformats(ctx: _Context) -> Optional[Finding]:
    ranking = ctx.ranking
    rows = [row for row in ranking.rows if row.family == REFORMAT]
    share = _share(rows)
    if share < REFORMAT_MIN_SHARE:
        return None
    evidence = []
    for row in sorted(rows, key=lambda r: -r.share)[:5]:
        if row.info is not None and row.info.inputs and row.info.outputs:
            src, dst = row.info.inputs[0], row.info.outputs[0]
            evidence.append(f"{row.layer.name}: {_layout(src)} -> {_layout(dst)} ({_pct(row.share)})")
    if not evidence:
        evidence.append("formats on each side need a detailed --layer-info")
    return Finding(
        rule="reformat",
        title="reformat/copy layers",
        family=REFORMAT,
        share=share,
        time_ms=_avg_ms(rows),
        summary=f"{len(rows)} reformat layer(s) take {_pct(share)} of the time",
        layers=_names(rows),
        evidence=evidence,
        command="give the engine I/O the layout and type its first/last layers want (trtexec --inputIOFormats/"
        "--outputIOFormats, e.g. fp16:chw), keep neighbouring layers in one precision (to-fp16 islands), and "
        "check that plugins accept the formats around them",
    )


# ---------------------------------------------------------------- FP32 layers in a reduced-precision engine


def _fp32_layers(ctx: _Context) -> Optional[Finding]:
    ranking = ctx.ranking
    compute = [r for r in ranking.rows if r.info is not None and r.info.precision and r.family not in _NON_COMPUTE_FAMILIES]
    reduced = [r for r in compute if r.info.precision in _REDUCED]
    # An engine is a reduced-precision one when a good part of its compute runs reduced: then FP32 compute beside it
    # is a choice someone can revisit. An FP32 engine (nothing reduced, or a stray cast) is never advised.
    if _share(reduced) < FP32_ENGINE_REDUCED_SHARE * _share(compute):
        return None
    rows = [r for r in compute if r.info.precision == "FP32" and r.family != MYELIN]
    rows = [r for r in rows if not any(t.precision in _NON_FLOAT for t in r.info.outputs)]
    share = _share(rows)
    if share < FP32_MIN_SHARE:
        return None
    by_family: Dict[str, float] = {}
    for row in rows:
        by_family[row.family] = by_family.get(row.family, 0.0) + row.share
    spread = ", ".join(f"{family} {_pct(s)}" for family, s in sorted(by_family.items(), key=lambda kv: -kv[1]))
    return Finding(
        rule="fp32-layers",
        title="FP32 layers in a reduced-precision engine",
        family=None,
        share=share,
        time_ms=_avg_ms(rows),
        summary=f"{len(rows)} compute layer(s) run in FP32 beside {_pct(_share(reduced))} of the time in "
        f"{'/'.join(sorted({r.info.precision for r in reduced}))}: {_pct(share)} of the time",
        layers=_names(rows),
        evidence=[
            f"by family: {spread}",
            "strongly typed TensorRT (11, RTX) runs each layer in its ONNX tensors' type; weakly typed builds keep "
            "FP32 where no reduced-precision kernel exists or a layer precision was set",
        ],
        command="polygraphy surgeon to-fp16 MODEL.onnx -o MODEL.fp16.onnx --report fp16_report.json  "
        "# keeps FP32 only where measurement shows it is needed; the report says why per island",
    )


# ---------------------------------------------------------------- attention not fused

_ATTENTION_MODULE = re.compile(r"att(?:n|ention)|mha|self_?att|cross_?att|multi_?head", re.IGNORECASE)
_MATMUL = re.compile(r"matmul|bmm|einsum|matrixmultiply", re.IGNORECASE)


def _is_softmax(row: RankedLayer) -> bool:
    ops = " ".join(piece.rsplit("/", 1)[-1] for piece in FUSED_SEPARATOR.split(row.layer.name)).lower()
    layer_type = (row.info.layer_type or "").lower() if row.info else ""
    return ("softmax" in ops or "softmax" in layer_type) and row.rule.id != "attention-op"


def _directory(name: str) -> str:
    return _WRAPPERS.sub("", FUSED_SEPARATOR.split(name)[0]).rsplit("/", 1)[0]


def _is_matmul(row: RankedLayer) -> bool:
    layer_type = (row.info.layer_type or "") if row.info else ""
    return bool(_MATMUL.search(row.layer.name.rsplit("/", 1)[-1]) or _MATMUL.search(layer_type))


def _unfused_attention(ctx: _Context) -> Optional[Finding]:
    ranking = ctx.ranking
    in_order = sorted(ranking.rows, key=lambda r: r.layer.index)
    blocks = []
    for position, row in enumerate(in_order):
        if row.family == MYELIN or not _is_softmax(row):
            continue
        before = [r for r in in_order[max(0, position - 4) : position] if _is_matmul(r)]
        after = [r for r in in_order[position + 1 : position + 5] if _is_matmul(r)]
        # Q.K^T before and .V after, as separate layers; a softmax named inside an attention module with its
        # batched MatMuls beside it is the unfused pattern (a classifier's final softmax has neither).
        if before and after and (_ATTENTION_MODULE.search(row.layer.name) or _directory(before[-1].layer.name) ==
                                 _directory(row.layer.name) == _directory(after[0].layer.name)):
            blocks.append([before[-1], row, after[0]])
    rows = [row for block in blocks for row in block]
    share = _share(rows)
    if not blocks or share < UNFUSED_ATTENTION_MIN_SHARE:
        return None
    return Finding(
        rule="unfused-attention",
        title="attention not fused",
        family=ATTENTION,
        share=share,
        time_ms=_avg_ms(rows),
        summary=f"{len(blocks)} attention block(s) run MatMul, Softmax and MatMul as separate layers: "
        f"{_pct(share)} of the time",
        layers=_names(rows),
        evidence=[f"e.g. {' -> '.join(r.layer.name for r in blocks[0])}"],
        command="let TensorRT fuse MHA: export Q.K^T -> (scale, mask Add) -> Softmax -> .V with no Cast/Transpose "
        "in between (torch scaled_dot_product_attention exports that), build in FP16/BF16 with TensorRT >= 8.6 "
        "(Myelin), head size a multiple of 8 (align-dims)",
        details={"blocks": len(blocks)},
    )


# ---------------------------------------------------------------- many tiny kernels


def _tiny_kernels(ctx: _Context) -> Optional[Finding]:
    ranking = ctx.ranking
    timed = ranking.timed_rows
    rows = [row for row in timed if row.layer.average_ms < TINY_KERNEL_MS]
    share = _share(rows)
    if len(rows) < TINY_KERNELS_MIN_COUNT or share < TINY_KERNELS_MIN_SHARE:
        return None
    return Finding(
        rule="tiny-kernels",
        title="many tiny kernels (launch-bound)",
        family=None,
        share=share,
        time_ms=_avg_ms(rows),
        summary=f"{len(rows)} of {len(timed)} timed layers take under {TINY_KERNEL_MS * 1000:.0f} us each, "
        f"{_pct(share)} of the time together",
        layers=_names(rows),
        evidence=["at this size a kernel's time is mostly launch overhead, not work"],
        command="trtexec --loadEngine=ENGINE --useCudaGraph (CUDA graphs remove per-launch cost); fuse small "
        "chains (fuse-ln, fuse-gelu) and batch more work per call",
    )


_RULES: List[Tuple[str, bool, Callable]] = [
    # (rule id, needs detailed layer info, rule)
    ("decomposed-norm", False, _decomposed_norm),
    ("misaligned-gemm", True, _misaligned_gemm),
    ("reformat", False, _reformats),
    ("fp32-layers", True, _fp32_layers),
    ("unfused-attention", False, _unfused_attention),
    ("tiny-kernels", False, _tiny_kernels),
]


def advise(
    ranking: Ranking, detailed: bool, engine_inputs: Sequence[str] = (), facts: Optional[ModelFacts] = None
) -> Advice:
    """Run every rule on ``ranking``; ``detailed`` says whether a detailed layer-info file was joined."""
    context = _Context(ranking, facts, frozenset(engine_inputs))
    findings, skipped, checked = [], [], []
    for rule_id, needs_detail, rule in _RULES:
        if needs_detail and not detailed:
            skipped.append(f"{rule_id}: needs a detailed --layer-info (trtexec --profilingVerbosity=detailed)")
            continue
        checked.append(rule_id)
        finding = rule(context)
        if finding is not None:
            findings.append(finding)
    findings.sort(key=lambda f: -f.share)
    return Advice(findings=findings, skipped=skipped, checked=checked)


def engine_precision(ranking: Ranking) -> Optional[str]:
    """The precision most GEMM/conv time runs in (from layer info), or None without it."""
    totals: Dict[str, float] = {}
    for row in ranking.rows:
        if row.family == GEMM_CONV and row.info is not None and row.info.precision:
            totals[row.info.precision] = totals.get(row.info.precision, 0.0) + row.share
    return max(totals, key=totals.get) if totals else None


@dataclass
class AdviceDiff:
    resolved: List[Finding]  # in before, gone in after
    new: List[Finding]  # only in after
    remaining: List[Tuple[Finding, Finding]]  # (before, after)


def diff_advice(before: Advice, after: Advice) -> AdviceDiff:
    after_by_rule = {f.rule: f for f in after.findings}
    before_by_rule = {f.rule: f for f in before.findings}
    return AdviceDiff(
        # A rule that could not run on the after side (no detailed layer info) resolves nothing.
        resolved=[f for f in before.findings if f.rule not in after_by_rule and f.rule in after.checked],
        new=[f for f in after.findings if f.rule not in before_by_rule],
        remaining=[(before_by_rule[r], f) for r, f in after_by_rule.items() if r in before_by_rule],
    )

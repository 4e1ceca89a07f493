"""Sort layers into families (attention, LayerNorm, GEMM/conv, ...) by name and, when known, by layer type.

Rules are tried in order and the first that fires wins; each has an id and a description so ``--explain``
can say why a layer landed where it did. Name rules look at the *operation* part of a name (the last path
component of each ``+``-fused piece), not at the module path: ``/encoder/attention/self/MatMul`` is a GEMM
that happens to live in an attention block (``--group-by prefix`` shows blocks).
"""

import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

ATTENTION = "attention"
LAYERNORM = "layernorm"
GEMM_CONV = "gemm/conv"
POINTWISE = "pointwise"
REFORMAT = "reformat"
QDQ = "q/dq"
SHAPE_COPY = "shape/copy"
MYELIN = "myelin"
DLA_TRANSFER = "dla-transfer"
OTHER = "other"

FAMILIES = (ATTENTION, LAYERNORM, GEMM_CONV, POINTWISE, REFORMAT, QDQ, SHAPE_COPY, MYELIN, DLA_TRANSFER, OTHER)

FAMILY_TITLES = {
    ATTENTION: "attention/MHA",
    LAYERNORM: "LayerNorm",
    GEMM_CONV: "GEMM/conv",
    POINTWISE: "pointwise",
    REFORMAT: "reformat",
    QDQ: "Q/DQ",
    SHAPE_COPY: "shape/copy",
    MYELIN: "Myelin region",
    DLA_TRANSFER: "DLA transfer",
    OTHER: "other",
}


@dataclass(frozen=True)
class Rule:
    id: str
    family: str
    description: str


@dataclass(frozen=True)
class _Subject:
    full: str  # whole name, lower case
    ops: str  # operation parts only, lower case, joined by spaces
    tokens: frozenset  # alphabetic words of ``ops``
    layer_type: str  # lower case, "" when unknown


_TYPE_FAMILIES: List[Tuple[str, str, Tuple[str, ...]]] = [
    # (family, description, lower-case substrings of the engine inspector's LayerType)
    (REFORMAT, "layer type is a reformat", ("reformat",)),
    (MYELIN, "layer type is Myelin", ("myelin",)),
    (ATTENTION, "layer type is attention/softmax", ("mha", "attention", "softmax")),
    (LAYERNORM, "layer type is a normalization", ("normalization", "layernorm")),
    (GEMM_CONV, "layer type is a convolution/GEMM", ("conv", "gemm", "matrixmultiply", "fullyconnected")),
    (QDQ, "layer type is Q/DQ", ("quantize", "dequantize")),
    (
        SHAPE_COPY,
        "layer type moves data",
        ("shuffle", "slice", "concat", "gather", "scatter", "noop", "identity", "shape", "constant", "resize", "pad"),
    ),
    (POINTWISE, "layer type is elementwise", ("pointwise", "elementwise", "activation", "scale", "unary", "cast")),
]

_ATTENTION_OPS = re.compile(r"mha|fmha|flash_?att|attention|multihead|sdpa")
_ATTENTION_MODULE = re.compile(r"att(?:n|ention)|mha|self_?att|cross_?att")
_LAYERNORM_MODULE = re.compile(r"layer_?norm|rms_?norm|\bln(?:_?\d+|_f)?\b|_ln\b")
_LAYERNORM_OPS = re.compile(r"layer_?norm|rms_?norm|group_?norm|instance_?norm|normalization")
_GEMM_OPS = re.compile(
    r"conv|gemm|matmul|matrixmultiply|fully ?connected|einsum|xmma|cutlass|cublas|hmma|imma|(?<!quantize)linear|\bfc\b"
)
_QDQ_OPS = re.compile(r"quantize|dequantize|\bqdq\b")
_SHAPE_WORDS = frozenset(
    "shuffle reshape transpose permute concat concatenation slice gather scatter squeeze unsqueeze flatten copy "
    "identity shape split pad padding resize expand tile cast constant noop reformat".split()
)
_POINTWISE_WORDS = frozenset(
    "pwn pointwise elementwise relu gelu silu swish sigmoid tanh erf add sub mul div pow sqrt rsqrt exp log neg "
    "abs clip min max activation scale bias where not and or unary sum reciprocal softplus leakyrelu hardswish "
    "prelu elu selu mish".split()
)
_DLA_TRANSFER = re.compile(r"(?:input_to|output_from|finish)_nvm|nvm_to_|_to_nvm|\bdla\b.*\b(?:copy|transfer)\b")
_WORDS = re.compile(r"[a-z]+")
_CAMEL = re.compile(r"[A-Z][a-z]*|[a-z]+")


def _myelin_kernel_family(name: str) -> Tuple[str, str]:
    """Classify a TensorRT 10+ Myelin kernel row such as ``__myl_MoveMeanSubMulMeanAddSqrtDivMulMulAdd_0x..``.

    Myelin names its generated kernels after the ops they fuse, in CamelCase; the op sequence tells us what
    the kernel computes.
    """
    ops = name[len("__myl_") :].split("_", 1)[0]
    words = {word.lower() for word in _CAMEL.findall(ops)}
    if "mean" in words and (words & {"sqrt", "rsqrt", "rsq"}):
        return LAYERNORM, "Myelin kernel fuses Mean + Sqrt (a LayerNorm/RMSNorm)"
    if words & {"mha", "fmha", "softmax", "attn"} or ({"exp", "max"} <= words and "sum" in words):
        return ATTENTION, "Myelin kernel fuses Softmax/MHA ops"
    if words & {"fc", "gemm", "mm", "bmm", "conv", "matmul", "gemv"}:
        return GEMM_CONV, "Myelin kernel fuses a GEMM/conv"
    if words and words <= {"move", "tran", "transpose", "resh", "reshape", "slice", "concat", "copy", "gath",
                           "gather", "cast", "split", "pad", "shuf"}:
        return SHAPE_COPY, "Myelin kernel only moves data"
    return POINTWISE, "Myelin kernel fuses elementwise ops"


# TensorRT joins the layers it fused with " + ", or (8.6+) with the \x1e / \x1f separators.
FUSED_SEPARATOR = re.compile(r" \+ |[\x1e\x1f]")


def _subject(name: str, layer_type: Optional[str]) -> _Subject:
    lower = name.lower()
    pieces = [piece.rsplit("/", 1)[-1] for piece in FUSED_SEPARATOR.split(lower)]
    ops = " ".join(pieces)
    return _Subject(full=lower, ops=ops, tokens=frozenset(_WORDS.findall(ops)), layer_type=(layer_type or "").lower())


_NameRule = Tuple[str, str, str, Callable[[_Subject], bool]]

# Layers TensorRT itself made: reformats, DLA transfers, Myelin regions.
_FIRST_NAME_RULES: List[_NameRule] = [
    (
        "reformat-name",
        REFORMAT,
        "name is a TensorRT reformat (Reformatting CopyNode / reformatter)",
        lambda s: s.full.startswith("reformatting copynode") or "reformatter" in s.full or "reformatted " in s.full,
    ),
    ("dla-transfer-name", DLA_TRANSFER, "name is a DLA transfer (*_nvm / DLA copy)", lambda s: bool(_DLA_TRANSFER.search(s.full))),
    ("foreign-node", MYELIN, "name is a Myelin region {ForeignNode[...]}", lambda s: s.full.startswith("{foreignnode[")),
]
_OP_NAME_RULES: List[_NameRule] = [
    ("attention-op", ATTENTION, "op name mentions MHA/attention", lambda s: bool(_ATTENTION_OPS.search(s.ops))),
    (
        "softmax-in-attention",
        ATTENTION,
        "Softmax inside an attention module",
        lambda s: "softmax" in s.ops and bool(_ATTENTION_MODULE.search(s.full)),
    ),
    ("layernorm-op", LAYERNORM, "op name mentions LayerNorm/RMSNorm/normalization", lambda s: bool(_LAYERNORM_OPS.search(s.ops))),
    ("gemm-conv-op", GEMM_CONV, "op name mentions conv/GEMM/MatMul or a GEMM kernel", lambda s: bool(_GEMM_OPS.search(s.ops))),
    (
        "layernorm-module",
        LAYERNORM,
        "an unfused piece (reduce/elementwise) of a LayerNorm module",
        lambda s: bool(_LAYERNORM_MODULE.search(s.full)),
    ),
]
_LAST_NAME_RULES: List[_NameRule] = [
    ("qdq-op", QDQ, "op name mentions Quantize/Dequantize", lambda s: bool(_QDQ_OPS.search(s.ops))),
    ("shape-op", SHAPE_COPY, "op name is a reshape/transpose/concat/slice/copy", lambda s: bool(s.tokens & _SHAPE_WORDS)),
    ("pointwise-op", POINTWISE, "op name is an elementwise op/activation", lambda s: bool(s.tokens & _POINTWISE_WORDS)),
]

RULES = {
    rule_id: Rule(rule_id, family, description)
    for rule_id, family, description, _ in _FIRST_NAME_RULES + _OP_NAME_RULES + _LAST_NAME_RULES
}
for _family, _description, _ in _TYPE_FAMILIES:
    RULES[f"type:{_family}"] = Rule(f"type:{_family}", _family, _description)
RULES["fallback"] = Rule("fallback", OTHER, "no rule matched")


_WEAK_TYPE_FAMILIES = (SHAPE_COPY, POINTWISE)


def _type_rule(layer_type: str, weak: bool) -> Optional[Rule]:
    for family, _, needles in _TYPE_FAMILIES:
        if (family in _WEAK_TYPE_FAMILIES) == weak and any(needle in layer_type for needle in needles):
            return RULES[f"type:{family}"]
    return None




_MASK_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_CACHE_LIMIT = 1 << 16
_cache: Dict[Tuple[bytes, Optional[str]], Rule] = {}


def classify(name: str, layer_type: Optional[str] = None) -> Rule:
    """The first rule that fires for this layer (see :func:`_classify`)."""
    return classify_many([name], [layer_type])[0]


def classify_many(names: List[str], layer_types: List[Optional[str]]) -> List[Rule]:
    """:func:`classify` for many layers at once, which is what makes 100,000 layers cheap.

    No rule depends on the value of a number, and the names of repeated blocks differ only in numbers
    (layer.0 ... layer.11), so one answer per digit-masked name serves every block. The masking is done for
    all names in one ``bytes.translate`` call instead of one call per name.
    """
    joined = "\n".join(names).encode("utf-8", "surrogatepass").translate(_MASK_DIGITS)
    # A name containing a newline would split in two; such names never come from TensorRT, but stay correct.
    masked = joined.split(b"\n") if len(names) == joined.count(b"\n") + 1 else [
        name.encode("utf-8", "surrogatepass").translate(_MASK_DIGITS) for name in names
    ]
    if len(_cache) > _CACHE_LIMIT:
        _cache.clear()
    rules = []
    append = rules.append
    for key in zip(masked, layer_types):
        rule = _cache.get(key)
        if rule is None:
            rule = _cache[key] = _classify(key[0].decode("utf-8", "surrogatepass"), key[1])
        append(rule)
    return rules


def _classify(name: str, layer_type: Optional[str]) -> Rule:
    """The first rule that fires for this layer.

    Order: names TensorRT gives its own layers; a decisive layer type (conv, attention, normalization, Q/DQ,
    ...); op names; then weak layer types (pointwise, shuffle), because an elementwise layer inside a
    LayerNorm module is LayerNorm time; then the remaining op-name rules.
    """
    if name.startswith("__myl_"):
        family, description = _myelin_kernel_family(name)
        return Rule(f"myelin-kernel:{family}", family, description)
    subject = _subject(name, layer_type)
    stages = (
        _FIRST_NAME_RULES,
        lambda: _type_rule(subject.layer_type, weak=False),
        _OP_NAME_RULES,
        lambda: _type_rule(subject.layer_type, weak=True),
        _LAST_NAME_RULES,
    )
    for stage in stages:
        if callable(stage):
            rule = stage() if subject.layer_type else None
            if rule:
                return rule
            continue
        for rule_id, _, _, test in stage:
            if test(subject):
                return RULES[rule_id]
    return RULES["fallback"]

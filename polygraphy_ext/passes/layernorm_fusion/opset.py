"""Is raising the default-domain opset of a model safe for every node that stays in it?

A node keeps its meaning under a higher opset if its operator's schema did not change in between, or every
change was of a kind that cannot alter an existing node: more allowed types, or a new optional attribute /
trailing optional input whose default is the old behaviour. The first kind is read from ONNX's own schemas;
the second is a short list, each entry checked against the ONNX operator changelog. Anything else (an
attribute turned into an input, a changed default, a renamed output) blocks the raise and is named.
"""

import functools
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

import onnx
import onnx.defs
import onnx_graphsurgeon as gs

from polygraphy_ext.passes.layernorm_fusion.matching import DEFAULT_DOMAINS, as_np_dtype

# (op, since_version) -> attributes/inputs added in that version whose defaults keep the old behaviour.
DEFAULT_PRESERVING_ADDITIONS: Dict[Tuple[str, int], Tuple[str, ...]] = {
    ("Reshape", 14): ("allowzero",),  # 0 = old behaviour
    ("Shape", 15): ("start", "end"),  # default = the whole shape
    ("Cast", 19): ("saturate",),  # only affects float8 targets, which older opsets cannot name
    ("Constant", 12): ("value_float", "value_floats", "value_int", "value_ints", "value_string", "value_strings"),
    ("ArgMax", 12): ("select_last_index",),  # 0 = old behaviour
    ("ArgMin", 12): ("select_last_index",),
    ("Pad", 18): ("axes",),  # optional trailing input; absent = all axes
    ("Split", 18): ("num_outputs",),  # optional; absent = old behaviour
    ("Resize", 18): ("antialias", "axes", "keep_aspect_ratio_policy"),  # 0 / all / "stretch" = old behaviour
    ("ScatterND", 16): ("reduction",),  # "none" = old behaviour
    ("ScatterElements", 16): ("reduction",),
    ("GRU", 14): ("layout",),  # 0 = old behaviour
    ("LSTM", 14): ("layout",),
    ("RNN", 14): ("layout",),
}


@dataclass
class Blocker:
    node: str
    op: str
    reason: str


def _types(schema, formal) -> frozenset:
    for constraint in schema.type_constraints:
        if constraint.type_param_str == formal.type_str:
            return frozenset(constraint.allowed_type_strs)
    return frozenset([formal.type_str])


def _step_change(op: str, old, new) -> Optional[str]:
    """None if ``new`` (the next version of ``op``) keeps every node written against ``old`` valid and unchanged."""
    allowed = set(DEFAULT_PRESERVING_ADDITIONS.get((op, new.since_version), ()))
    for kind, old_formals, new_formals in (("input", old.inputs, new.inputs), ("output", old.outputs, new.outputs)):
        if len(new_formals) < len(old_formals):
            return f"{kind}s were removed"
        for a, b in zip(old_formals, new_formals):
            if a.option != b.option:
                return f"{kind} {a.name} changed from {a.option} to {b.option}"
        for extra in new_formals[len(old_formals) :]:
            if kind == "output" or extra.option != onnx.defs.OpSchema.FormalParameterOption.Optional:
                return f"a required {kind} {extra.name} was added"
            if extra.name not in allowed:
                return f"optional {kind} {extra.name} was added"
    for name, attr in old.attributes.items():
        new_attr = new.attributes.get(name)
        if new_attr is None:
            return f"attribute {name} was removed"
        if attr.required != new_attr.required or attr.type != new_attr.type:
            return f"attribute {name} changed"
        if attr.default_value.SerializeToString() != new_attr.default_value.SerializeToString():
            return f"the default of attribute {name} changed"
    for name, attr in new.attributes.items():
        if name not in old.attributes and (attr.required or name not in allowed):
            return f"attribute {name} was added"
    return None


def _versions(op: str, current: int, target: int):
    """The schemas of ``op`` in force at ``current`` and at every later change up to ``target``."""
    schema = onnx.defs.get_schema(op, current, "")
    schemas = [schema]
    for version in range(current + 1, target + 1):
        nxt = onnx.defs.get_schema(op, version, "")
        if nxt.since_version != schemas[-1].since_version:
            schemas.append(nxt)
    return schemas


@functools.lru_cache(maxsize=None)
def lost_input_types(op: str, current: int, target: int) -> Tuple[frozenset, ...]:
    """Per input position, the element types allowed at ``current`` but not at some version up to ``target``.

    Narrowed type lists block a raise only for a node that actually uses a dropped type.
    """
    schemas = _versions(op, current, target)
    lost = [set() for _ in schemas[0].inputs]
    for old, new in zip(schemas, schemas[1:]):
        for i, (a, b) in enumerate(zip(old.inputs, new.inputs)):
            if i < len(lost):
                lost[i] |= _types(old, a) - _types(new, b)
    return tuple(frozenset(t) for t in lost)


@functools.lru_cache(maxsize=None)
def upgrade_blocker(op: str, current: int, target: int) -> Optional[str]:
    """Why ``op`` written for opset ``current`` may change meaning under ``target``; None when it cannot
    (apart from narrowed type lists, see ``lost_input_types``)."""
    try:
        schema = onnx.defs.get_schema(op, current, "")
    except onnx.defs.SchemaError:
        return f"{op} is not an operator of opset {current}"
    try:
        final = onnx.defs.get_schema(op, target, "")
    except onnx.defs.SchemaError:
        return f"{op} no longer exists in opset {target}"
    if final.deprecated:
        return f"{op} is deprecated in opset {target}"
    while schema.since_version != final.since_version:
        versions = [
            onnx.defs.get_schema(op, v, "").since_version for v in range(schema.since_version + 1, target + 1)
        ]
        nxt = onnx.defs.get_schema(op, min(v for v in versions if v > schema.since_version), "")
        why = _step_change(op, schema, nxt)
        if why:
            return f"{op} changed in opset {nxt.since_version}: {why}"
        schema = nxt
    return None


def _with_functions(graph: gs.Graph) -> List[gs.Graph]:
    """The graph and its model-local functions: ONNX requires them to import the same default-domain opset."""
    return [graph, *(graph.functions or [])]


def _all_nodes(graph: gs.Graph) -> Iterable[gs.Node]:
    for body in _with_functions(graph):
        yield from body.nodes
        for sub in body.subgraphs(recursive=True):
            yield from sub.nodes


def raise_blockers(graph: gs.Graph, current: int, target: int, leaving: Dict[int, gs.Node]) -> List[Blocker]:
    """Nodes (not about to be replaced) whose meaning a raise from ``current`` to ``target`` may change."""
    blockers = []
    for node in _all_nodes(graph):
        if id(node) in leaving or (node.domain or "") not in DEFAULT_DOMAINS:
            continue
        why = upgrade_blocker(node.op, current, target) or _dropped_type(node, current, target)
        if why:
            blockers.append(Blocker(node.name, node.op, why))
    return blockers


def _dropped_type(node: gs.Node, current: int, target: int) -> Optional[str]:
    for index, lost in enumerate(lost_input_types(node.op, current, target)):
        if not lost or index >= len(node.inputs) or not node.inputs[index].name:
            continue
        dtype = node.inputs[index].dtype
        try:
            name = onnx.helper.tensor_dtype_to_string(onnx.helper.np_dtype_to_tensor_dtype(as_np_dtype(dtype)))
        except Exception:
            return f"{node.op} dropped input types by opset {target} and this input's type is unknown"
        type_str = f"tensor({name.split('.')[-1].lower()})"  # TensorProto.FLOAT16 -> tensor(float16)
        if type_str in lost:
            return f"{node.op} no longer accepts {type_str} by opset {target}"
    return None


def describe_blockers(blockers: List[Blocker], limit: int = 5) -> str:
    by_reason: Dict[str, List[str]] = {}
    for blocker in blockers:
        by_reason.setdefault(blocker.reason, []).append(blocker.node or f"<unnamed {blocker.op}>")
    parts = []
    for reason, names in sorted(by_reason.items(), key=lambda item: -len(item[1])):
        shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
        parts.append(f"{reason} ({shown})")
    return "; ".join(parts)


def default_opset(graph: gs.Graph) -> int:
    for entry in graph.import_domains or []:
        if entry.domain in DEFAULT_DOMAINS:
            return int(entry.version)
    return int(graph.opset)


def set_default_opset(graph: gs.Graph, version: int) -> None:
    """Raise the default-domain opset of the graph and of every local function that imports that domain."""
    for body in _with_functions(graph):
        imports = body.import_domains
        if body is not graph and not any(entry.domain in DEFAULT_DOMAINS for entry in imports or []):
            continue  # a function using only other domains keeps its imports
        body.opset = version
        if imports is not None:
            # New OperatorSetIdProtos: the imported ones are shared with the caller's ModelProto.
            body.import_domains = [
                onnx.helper.make_opsetid(entry.domain, version if entry.domain in DEFAULT_DOMAINS else entry.version)
                for entry in imports
            ]
    needed_ir = onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", version)])
    if graph.ir_version is None or graph.ir_version < needed_ir:
        graph.ir_version = needed_ir

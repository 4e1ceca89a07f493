"""Nodes that stay FP32 whatever the measurements say, because of what they compute or how ONNX types them."""

from typing import Dict, Iterable, Set

from polygraphy_ext.passes.precision.model_index import ModelIndex, NodeInfo

# Ops that carry no computation of their own: an island of FP32 nodes never needs them in FP32, and they
# are what the writer folds into a neighbouring island to avoid Cast pairs around them.
DATA_MOVEMENT_OPS = frozenset(
    {
        "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Slice", "Gather", "Concat",
        "Split", "Expand", "Tile", "Pad", "GatherElements", "GatherND", "DepthToSpace", "SpaceToDepth", "Dropout",
    }
)
# Float results of these are positions or sizes: rounding them to 11 significant bits changes which element
# or how many (rotary angles, arange, Resize scales).
_INDEX_OPS = frozenset({"Range"})


class NodeReasons(dict):
    """node name -> why it stays FP32 (first reason wins)."""

    def add(self, name: str, reason: str):
        self.setdefault(name, reason)


def semantic_fp32_nodes(index: ModelIndex) -> NodeReasons:
    reasons = NodeReasons()
    derived = _integer_derived_tensors(index)
    for info in index.nodes:
        if not (info.low_inputs or info.low_outputs or info.fixed_inputs or info.fixed_outputs):
            continue  # no FP32 tensor in or out: nothing to convert
        if info.op == "Constant":
            continue  # a source: its type follows its consumers (see convert.py)
        reason = _reason(index, info, derived)
        if reason:
            reasons.add(info.name, reason)
    return reasons


def _reason(index: ModelIndex, info: NodeInfo, derived: Set[str]):
    node = info.node
    if info.schema_missing:
        return f"no ONNX schema for {node.domain or 'ai.onnx'}::{info.op} at opset {index.opset} (custom op)"
    if info.implicit_inputs or any(a.HasField("g") or len(a.graphs) for a in node.attribute):
        return "has a subgraph (control flow is kept FP32 with its subgraphs)"
    if any(a.name == "dtype" for a in node.attribute):
        return "its output type is set by its 'dtype' attribute"
    if not (info.low_inputs or info.low_outputs):
        return f"its ONNX schema allows no {index.low.name} at opset {index.opset}"
    if info.op in _INDEX_OPS:
        return "computes indices or sizes"
    float_inputs = [name for name in info.float_inputs() if name not in index.initializers]
    if float_inputs and all(name in derived or _is_constant(index, name) for name in float_inputs) and any(
        name in derived for name in float_inputs
    ):
        return "computed only from values cast from integers (shapes, positions, masks)"
    return None


def _is_constant(index: ModelIndex, name: str) -> bool:
    if name in index.initializers:
        return True
    producer = index.producer.get(name)
    return producer is not None and index.nodes[producer[0]].op == "Constant"


def _integer_derived_tensors(index: ModelIndex) -> Set[str]:
    """FP32 tensors computed only from integer tensors (through Casts) and constants, in topological order."""
    derived: Set[str] = set()
    for info in index.nodes:
        node = info.node
        if info.op == "Cast" and node.input and not index.is_float(node.input[0]):
            derived.update(name for name in node.output if index.is_float(name))
            continue
        if info.op == "Constant":
            continue
        float_inputs = [name for name in info.float_inputs() if name not in index.initializers]
        if float_inputs and all(name in derived or _is_constant(index, name) for name in float_inputs) and any(
            name in derived for name in float_inputs
        ):
            derived.update(name for name in node.output if index.is_float(name))
    return derived


def user_fp32_nodes(index: ModelIndex, keep_fp32: Iterable[str]) -> NodeReasons:
    """``keep_fp32`` entries are node names or op types; an entry that is neither raises ValueError."""
    reasons = NodeReasons()
    ops = {info.op for info in index.nodes}
    unknown = []
    for entry in keep_fp32 or ():
        if entry in index.by_name:
            reasons.add(entry, "kept FP32 by request")
        elif entry in ops:
            for info in index.nodes:
                if info.op == entry:
                    reasons.add(info.name, f"kept FP32 by request (op {entry})")
        else:
            unknown.append(entry)
    if unknown:
        raise ValueError(
            f"--keep-fp32: no node or op type named {', '.join(repr(u) for u in unknown)} in the model's main graph"
        )
    return reasons


def merge(*reason_maps: Dict[str, str]) -> NodeReasons:
    merged = NodeReasons()
    for reasons in reason_maps:
        for name, reason in reasons.items():
            merged.add(name, reason)
    return merged

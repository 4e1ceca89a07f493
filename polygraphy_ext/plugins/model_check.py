"""Which TensorRT plugins an ONNX model needs, and a one-line account of the ones nobody registered.

TensorRT's ONNX parser turns every node it has no importer for into a plugin lookup keyed by
(op_type, ``plugin_version`` attribute or "1", ``plugin_namespace`` attribute or ""). A missing creator
then surfaces as "Plugin not found" from deep inside the parser, one node at a time. Checking the whole
model against the registry before parsing lets us name every missing plugin at once, and say which
library would provide it. Pure functions: no TensorRT import here.
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set

import onnx

DEFAULT_PLUGIN_VERSION = "1"
DEFAULT_PLUGIN_NAMESPACE = ""
_NODE_NAMES_SHOWN = 3


@dataclass(frozen=True, order=True)
class PluginKey:
    name: str
    version: str
    namespace: str

    def __str__(self):
        return f"{self.name} version {self.version} namespace '{self.namespace}'"


@dataclass
class PluginUse:
    """One plugin a model needs, and the nodes (and ONNX domains) that need it."""

    key: PluginKey
    domains: Set[str] = field(default_factory=set)
    node_names: List[str] = field(default_factory=list)


def _string_attr(node: onnx.NodeProto, name: str, default: str) -> str:
    for attr in node.attribute:
        if attr.name == name:
            if attr.type == onnx.AttributeProto.STRING:
                return attr.s.decode("utf-8", "replace")
            return str(onnx.helper.get_attribute_value(attr))
    return default


def _walk_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for node in graph.node:
        yield node
        for attr in node.attribute:  # If/Loop/Scan bodies are parsed too
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _walk_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _walk_nodes(sub)


def onnx_standard_op(op_type: str, domain: str) -> bool:
    """Fallback for "does the parser import this op natively" when no TensorRT parser is at hand."""
    return domain in ("", "ai.onnx") and onnx.defs.has(op_type)


def plugin_uses(model: onnx.ModelProto, is_native_op: Callable[[str, str], bool] = onnx_standard_op) -> List[PluginUse]:
    """Every plugin the parser would look up for ``model``, in first-use order.

    ``is_native_op(op_type, domain)`` says whether the parser imports an op itself (TensorRT's
    ``OnnxParser.supports_operator``); calls of model-local functions are inlined by the parser, so their
    bodies are scanned instead.
    """
    local_functions = {(f.domain, f.name): f for f in model.functions}
    uses: Dict[PluginKey, PluginUse] = {}

    def visit(nodes: Iterable[onnx.NodeProto]):
        for node in nodes:
            function = local_functions.get((node.domain, node.op_type))
            if function is not None:
                visit(function.node)
                continue
            if is_native_op(node.op_type, node.domain):
                continue
            key = PluginKey(
                node.op_type,
                _string_attr(node, "plugin_version", DEFAULT_PLUGIN_VERSION),
                _string_attr(node, "plugin_namespace", DEFAULT_PLUGIN_NAMESPACE),
            )
            use = uses.setdefault(key, PluginUse(key))
            use.domains.add(node.domain)
            use.node_names.append(node.name or f"<unnamed {node.op_type}>")

    visit(_walk_nodes(model.graph))
    return list(uses.values())


def missing_plugins(uses: Sequence[PluginUse], registered: Iterable[PluginKey]) -> List[PluginUse]:
    registered = set(registered)
    return [use for use in uses if use.key not in registered]


def describe_plugins(
    missing: Sequence[PluginUse],
    registered: Mapping[PluginKey, Optional[str]],
    known_providers: Mapping[PluginKey, str],
) -> str:
    """Each missing plugin, the nodes that use it (when known) and where it would come from, joined by "; "."""
    parts = []
    for use in missing:
        where = known_providers.get(use.key)
        same_name = sorted(key for key in registered if key.name == use.key.name)
        if where:
            hint = f"provided by {where}"
        elif same_name:
            have = ", ".join(
                f"version {key.version} namespace '{key.namespace}'"
                + (f" from {registered[key]}" if registered[key] else "")
                for key in same_name
            )
            hint = f"registered only as {have}: fix the node's plugin_version/plugin_namespace or load the right library"
        else:
            hint = "no loaded library provides it"
        if use.node_names:
            nodes = ", ".join(f"'{name}'" for name in use.node_names[:_NODE_NAMES_SHOWN])
            if len(use.node_names) > _NODE_NAMES_SHOWN:
                nodes += f" +{len(use.node_names) - _NODE_NAMES_SHOWN} more"
            plural = "s" if len(use.node_names) > 1 else ""
            hint = f"node{plural} {nodes}; {hint}"
        parts.append(f"{use.key} ({hint})")
    return "; ".join(parts)


def describe_missing(
    model_label: str,
    missing: Sequence[PluginUse],
    registered: Mapping[PluginKey, Optional[str]],
    known_providers: Mapping[PluginKey, str],
) -> str:
    """One line naming every missing plugin, its nodes, and where it would come from.

    ``registered`` maps each registered creator to the library it came from (None: built into TensorRT or
    loaded outside polygraphy-ext); ``known_providers`` maps plugins we know of but have not loaded to a hint
    such as "polygraphy-ext's shipped library (--plugins polygraphy_ext)".
    """
    return (
        f"{model_label} needs TensorRT plugin(s) that are not registered: "
        + describe_plugins(missing, registered, known_providers)
        + ". Load the libraries that provide them with --plugins."
    )

"""CPU reference for polygraphy-ext's plugin nodes: rewrites them into ops onnxruntime can run.

A model fused by ``fuse-ln --target plugin`` contains LayerNorm/SkipLayerNorm/RMSNorm/BiasGelu nodes that
only our TensorRT plugin library implements, so it cannot be checked numerically without a GPU. This pass
replaces each with the onnxruntime op(s) computing the same function (ONNX ``LayerNormalization`` and ``Add``,
onnxruntime's ``SimplifiedLayerNormalization`` and ``com.microsoft`` ``Gelu``/``FastGelu``), leaving every
other node alone. The start-up hook applies it inside Polygraphy's onnxruntime loader (``SessionFromOnnx``, see
``integration/patches/onnxrt_session.py``),
so ``polygraphy run fused.onnx --onnxrt`` runs the fused model on CPU and ``--trt --onnxrt`` compares the
plugins against this reference on a GPU machine.
"""

import os
from typing import Dict, Tuple

from polygraphy import mod

from polygraphy_ext.plugins.specs import library_spec

# Lazy: the start-up hook imports this module whenever Polygraphy's onnxruntime loader is imported.
onnx = mod.lazy_import("onnx")
gs = mod.lazy_import("onnx_graphsurgeon")

MS_DOMAIN = "com.microsoft"


def _is_ours(node: "gs.Node") -> bool:
    return library_spec().owns(node.op, node.domain or "", str(node.attrs.get("plugin_namespace", "")))


def has_plugin_nodes(model: "onnx.ModelProto") -> bool:
    spec = library_spec()
    return any(spec.owns(node.op_type, node.domain, _namespace(node)) for node in model.graph.node)


def _namespace(node: "onnx.NodeProto") -> str:
    return next((a.s.decode() for a in node.attribute if a.name == "plugin_namespace"), "")


def _present(tensors, index):
    return tensors[index] if len(tensors) > index and not tensors[index].is_empty() else None


def _layer_norm(graph: "gs.Graph", x, gamma, beta, out, axis: int, epsilon: float, name: str):
    inputs = [x, gamma] + ([beta] if beta is not None else [])
    graph.nodes.append(
        gs.Node("LayerNormalization", name=name, inputs=inputs, outputs=[out], attrs={"axis": axis, "epsilon": epsilon})
    )


def _field(node: "gs.Node", name: str):
    """The node's value of a plugin field, or the plugin's default from specs.json (what the plugin would use)."""
    spec = library_spec().plugins[node.op].fields[name]
    value = node.attrs.get(name, spec.default)
    if spec.type == "float32":
        return float(value)
    if spec.type == "int32":
        return int(value)
    return value.decode() if isinstance(value, bytes) else str(value)


def _lower_node(graph: "gs.Graph", node: "gs.Node", name: str):
    ins, outs = node.inputs, node.outputs
    if node.op == "LayerNorm":
        _layer_norm(graph, ins[0], ins[1], _present(ins, 2), outs[0], _field(node, "axis"),
                    _field(node, "epsilon"), name)
    elif node.op == "SkipLayerNorm":
        total = gs.Variable(f"{name}_sum", dtype=None) if _present(outs, 1) is None else outs[1]
        bias = _present(ins, 4) if _field(node, "has_bias") else None
        beta = _present(ins, 3) if _field(node, "has_beta") else None
        if bias is not None:
            partial = gs.Variable(f"{name}_input_skip", dtype=None)
            graph.nodes.append(gs.Node("Add", name=f"{name}_add_skip", inputs=[ins[0], ins[1]], outputs=[partial]))
            graph.nodes.append(gs.Node("Add", name=f"{name}_add_bias", inputs=[partial, bias], outputs=[total]))
        else:
            graph.nodes.append(gs.Node("Add", name=f"{name}_add_skip", inputs=[ins[0], ins[1]], outputs=[total]))
        _layer_norm(graph, total, ins[2], beta, outs[0], _field(node, "axis"),
                    _field(node, "epsilon"), name)
    elif node.op == "RMSNorm":
        # onnxruntime registers SimplifiedLayerNormalization (RMS normalisation) in the default domain.
        graph.nodes.append(
            gs.Node("SimplifiedLayerNormalization", name=name, inputs=[ins[0], ins[1]], outputs=[outs[0]],
                    attrs={"axis": _field(node, "axis"), "epsilon": _field(node, "epsilon")})
        )
    elif node.op == "BiasGelu":
        approximate = _field(node, "approximate")
        bias = _present(ins, 1)
        if approximate == "tanh":
            inputs = [ins[0]] + ([bias] if bias is not None else [])
            graph.nodes.append(gs.Node("FastGelu", name=name, domain=MS_DOMAIN, inputs=inputs, outputs=[outs[0]]))
        else:
            x = ins[0]
            if bias is not None:
                x = gs.Variable(f"{name}_biased", dtype=None)
                graph.nodes.append(gs.Node("Add", name=f"{name}_add_bias", inputs=[ins[0], bias], outputs=[x]))
            graph.nodes.append(gs.Node("Gelu", name=name, domain=MS_DOMAIN, inputs=[x], outputs=[outs[0]]))
    else:  # pragma: no cover - guarded by _is_ours against specs.json
        raise ValueError(f"no onnxruntime reference for plugin {node.op}")


def lower_plugin_nodes(model: "onnx.ModelProto") -> Tuple["onnx.ModelProto", Dict[str, int]]:
    """A copy of ``model`` with our plugin nodes replaced by onnxruntime ops; also returns counts per plugin."""
    graph = gs.import_onnx(model)
    counts: Dict[str, int] = {}
    for index, node in enumerate([n for n in graph.nodes if _is_ours(n)]):
        counts[node.op] = counts.get(node.op, 0) + 1
        # New nodes and tensors are named after the plugin node; unnamed ones get a unique stand-in.
        _lower_node(graph, node, node.name or f"polygraphy_ext_{node.op}_{index}")
        node.inputs.clear()
        node.outputs.clear()
    if not counts:
        return model, counts
    # The opset stays as it is (raising it would change other ops' semantics): onnxruntime registers its own
    # LayerNormalization and SimplifiedLayerNormalization in the default domain from version 1.
    domains = list(graph.import_domains or [])
    if not any(d.domain == MS_DOMAIN for d in domains):
        domains.append(onnx.helper.make_opsetid(MS_DOMAIN, 1))
    graph.import_domains = domains
    graph.cleanup().toposort()
    lowered = gs.export_onnx(graph)
    lowered.ir_version = model.ir_version
    return lowered, counts


def reference_model_for_onnxrt(model):
    """``model`` (bytes or path) unchanged if it has none of our plugin nodes, else lowered, as bytes."""
    if isinstance(model, (str, os.PathLike)):
        if not has_plugin_nodes(onnx.load(os.fspath(model), load_external_data=False)):
            return model
        proto = onnx.load(os.fspath(model))
    else:
        proto = onnx.load_model_from_string(bytes(model))
        if not has_plugin_nodes(proto):
            return model
    return lowered_for_onnxruntime(proto, "onnxruntime: running polygraphy-ext plugin nodes").SerializeToString()


class ReferenceModelLoader:
    """Stands in for SessionFromOnnx's model argument: yields the model with our plugin nodes lowered."""

    def __init__(self, source):
        self._source = source

    def __call__(self):
        from polygraphy import util

        model, _ = util.invoke_if_callable(self._source)
        return reference_model_for_onnxrt(model)


def lowered_for_onnxruntime(proto, what: str):
    """``proto`` with its plugin nodes lowered to their CPU reference ops, logging ``what`` ran through which
    (``proto`` itself when it has none)."""
    from polygraphy.logger import G_LOGGER

    if not has_plugin_nodes(proto):
        return proto
    lowered, counts = lower_plugin_nodes(proto)
    G_LOGGER.info(
        f"{what} through their CPU reference ops ("
        + ", ".join(f"{op} x{n}" for op, n in sorted(counts.items()))
        + ")"
    )
    return lowered

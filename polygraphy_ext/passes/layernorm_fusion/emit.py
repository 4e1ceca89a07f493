"""Replace a matched chain by one node: ONNX LayerNormalization/RMSNormalization, or a TensorRT plugin node.

Plugin node names, versions, namespace, domain and fields come only from ``polygraphy_ext.plugins.specs``,
the definition the C++ plugin creators are generated from.
"""

from typing import Dict, List

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from polygraphy_ext.passes.layernorm_fusion.matching import normalized_dims
from polygraphy_ext.passes.layernorm_fusion.patterns import NormMatch
from polygraphy_ext.passes.naming import UniqueNames

LAYERNORM_OPSET = 17
RMSNORM_OPSET = 23


def detach_all(nodes: Dict[int, gs.Node]) -> None:
    """Cut every replaced node loose at once; graph.cleanup() drops them afterwards.

    gs's synchronized lists remove a node from each input's consumer list with list.remove, i.e. by gs's
    value equality, one node at a time: quadratic when thousands of chains share one eps or input tensor.
    Filtering each touched tensor's consumers once, by identity, keeps this linear.
    """
    touched = {}
    for node in nodes.values():
        for tensor in node.inputs:
            touched[id(tensor)] = tensor
    for tensor in touched.values():
        keep = [consumer for consumer in tensor.outputs if id(consumer) not in nodes]
        list.clear(tensor.outputs)
        list.extend(tensor.outputs, keep)
    for node in nodes.values():
        for tensor in node.outputs:
            list.clear(tensor.inputs)
        list.clear(node.inputs)
        list.clear(node.outputs)


def _const(names: UniqueNames, base: str, value: np.ndarray, dtype: np.dtype) -> gs.Constant:
    return gs.Constant(names(base), np.ascontiguousarray(value.astype(dtype)))


def _ones_like_block(match: NormMatch) -> np.ndarray:
    dims = normalized_dims(match.x, match.k)
    if dims is None:
        raise AssertionError("matching accepted a chain without scale whose normalized dims are unknown")
    return np.ones(dims, dtype=match.compute_dtype)


def _cast_output(graph: gs.Graph, names: UniqueNames, match: NormMatch, base: str) -> gs.Tensor:
    """The tensor the fused node writes: the chain's output, or a temporary that a Cast then converts."""
    if match.output_dtype == match.compute_dtype:
        return match.output
    temp = gs.Variable(names(f"{base}_out"), dtype=match.compute_dtype, shape=match.output.shape)
    graph.nodes.append(
        gs.Node(
            "Cast",
            names(f"{base}_cast"),
            attrs={"to": onnx.helper.np_dtype_to_tensor_dtype(np.dtype(match.output_dtype))},
            inputs=[temp],
            outputs=[match.output],
        )
    )
    return temp


class NativeEmitter:
    """ONNX LayerNormalization (opset 17) / RMSNormalization (opset 23)."""

    target = "native"

    @staticmethod
    def required_opset(match: NormMatch) -> int:
        return RMSNORM_OPSET if match.kind == "RMSNorm" else LAYERNORM_OPSET

    @staticmethod
    def emit(graph: gs.Graph, names: UniqueNames, match: NormMatch) -> gs.Node:
        base = names(f"{match.anchor.name or match.kind}_fused")
        gamma = match.gamma if match.gamma is not None else _ones_like_block(match)
        inputs: List[gs.Tensor] = [match.x, _const(names, f"{base}_scale", gamma, match.compute_dtype)]
        if match.kind == "LayerNorm":
            op = "LayerNormalization"
            if match.beta is not None:
                inputs.append(_const(names, f"{base}_bias", match.beta, match.compute_dtype))
        else:
            op = "RMSNormalization"
        out = _cast_output(graph, names, match, base)
        node = gs.Node(op, base, attrs={"axis": match.axis, "epsilon": float(match.epsilon)}, inputs=inputs, outputs=[out])
        graph.nodes.append(node)
        return node


class PluginEmitter:
    """Nodes for polygraphy-ext's TensorRT plugins (LayerNorm, SkipLayerNorm, RMSNorm) in their custom domain."""

    target = "plugin"

    @staticmethod
    def required_opset(match: NormMatch) -> int:
        return 0

    @staticmethod
    def emit(graph: gs.Graph, names: UniqueNames, match: NormMatch) -> gs.Node:
        from polygraphy_ext.plugins.specs import plugin_spec

        skip = match.skip
        plugin = "SkipLayerNorm" if skip is not None else match.kind
        spec = plugin_spec(plugin)
        base = names(f"{match.anchor.name or plugin}_fused")
        dtype = match.compute_dtype
        gamma = match.gamma if match.gamma is not None else _ones_like_block(match)
        outputs = [_cast_output(graph, names, match, base)]
        if skip is None:
            inputs = [match.x, _const(names, f"{base}_gamma", gamma, dtype)]
            if match.kind == "LayerNorm" and match.beta is not None:
                inputs.append(_const(names, f"{base}_beta", match.beta, dtype))
            attrs = spec.onnx_attrs(epsilon=match.epsilon, axis=match.axis)
        else:
            inputs = [skip.input, skip.skip, _const(names, f"{base}_gamma", gamma, dtype)]
            beta = match.beta
            if beta is None and skip.bias is not None:
                # The parser maps inputs by position, so a bias needs a beta slot in front of it.
                beta = np.zeros_like(gamma)
            if beta is not None:
                inputs.append(_const(names, f"{base}_beta", beta, dtype))
            if skip.bias is not None:
                inputs.append(_const(names, f"{base}_bias", skip.bias, dtype))
            if skip.output_sum:
                outputs.append(match.x)
            attrs = spec.onnx_attrs(
                epsilon=match.epsilon,
                axis=match.axis,
                has_beta=int(beta is not None),
                has_bias=int(skip.bias is not None),
                output_sum=int(skip.output_sum),
            )
        node = gs.Node(spec.name, base, attrs=attrs, inputs=inputs, outputs=outputs, domain=spec.onnx_domain)
        graph.nodes.append(node)
        return node


EMITTERS = {"native": NativeEmitter, "plugin": PluginEmitter}

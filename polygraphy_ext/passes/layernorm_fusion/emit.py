"""Replace a matched chain by one node: ONNX LayerNormalization/RMSNormalization, or a TensorRT plugin node.

Plugin node names, versions, namespace, domain and fields come only from ``polygraphy_ext.plugins.specs``,
the definition the C++ plugin creators are generated from.
"""

from typing import Dict, List

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from polygraphy_ext.passes.layernorm_fusion.matching import as_np_dtype
from polygraphy_ext.passes.layernorm_fusion.patterns import NormMatch
from polygraphy_ext.passes.layernorm_fusion.stages import ScalarFill
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


def _node(graph: gs.Graph, names: UniqueNames, op: str, base: str, inputs, **attrs) -> gs.Variable:
    # No dtype: a value_info with a type but no shape fails onnx.checker's full check; inference restores both.
    out = gs.Variable(names(f"{base}_out"))
    graph.nodes.append(gs.Node(op, names(base), attrs=attrs, inputs=list(inputs), outputs=[out]))
    return out


def _onnx_dtype(dtype) -> int:
    return onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def affine_input(graph: gs.Graph, names: UniqueNames, match: NormMatch, base: str, value, dtype) -> gs.Tensor:
    """A scale/bias input of the fused node from what the matcher found (see patterns.Affine)."""
    if isinstance(value, np.ndarray):
        return _const(names, base, value, dtype)
    if isinstance(value, ScalarFill):
        if match.dims is not None:
            return _const(names, base, np.full(match.dims, value.value), dtype)
        # Shape(x)[-k:] -> ConstantOfShape: a shape computation TensorRT folds at build time. With a skip the
        # sum is no longer computed; its operands have its shape.
        source = match.skip.input if match.skip is not None else match.x
        shape = _node(graph, names, "Shape", f"{base}_shape", [source])
        starts = _const(names, f"{base}_starts", np.array([-match.k]), np.int64)
        ends = _const(names, f"{base}_ends", np.array([np.iinfo(np.int64).max]), np.int64)
        block = _node(graph, names, "Slice", f"{base}_block", [shape, starts, ends])
        fill = gs.Constant(names(f"{base}_value"), np.full([1], value.value, dtype=dtype))
        return _node(graph, names, "ConstantOfShape", f"{base}_fill", [block], value=fill)
    tensor = value
    if tensor.shape is not None and len(tensor.shape) > match.k:
        # [1, ..., 1, K] (single-axis only, see stages.tensor_affine): the fused ops take exactly the block.
        flat = _const(names, f"{base}_flat_shape", np.array([-1]), np.int64)
        tensor = _node(graph, names, "Reshape", f"{base}_flat", [tensor, flat])
    if as_np_dtype(value.dtype) != np.dtype(dtype):
        tensor = _node(graph, names, "Cast", f"{base}_cast", [tensor], to=_onnx_dtype(dtype))
    return tensor


def _scale(graph, names, match: NormMatch, base: str) -> gs.Tensor:
    gamma = match.gamma if match.gamma is not None else ScalarFill(1.0)
    return affine_input(graph, names, match, base, gamma, match.compute_dtype)


def _cast_output(graph: gs.Graph, names: UniqueNames, match: NormMatch, base: str) -> gs.Tensor:
    """The tensor the fused node writes: the chain's output, or a temporary that a Cast then converts."""
    if match.output_dtype == match.compute_dtype:
        return match.output
    temp = gs.Variable(names(f"{base}_out"), dtype=match.compute_dtype, shape=match.output.shape)
    graph.nodes.append(
        gs.Node(
            "Cast",
            names(f"{base}_cast"),
            attrs={"to": _onnx_dtype(match.output_dtype)},
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
        inputs: List[gs.Tensor] = [match.x, _scale(graph, names, match, f"{base}_scale")]
        # Statistics in float32 whatever the input type: what a correct 16-bit norm needs (and the ONNX default of
        # both ops, written out so that nobody has to remember it).
        attrs = {"axis": match.axis, "epsilon": float(match.epsilon), "stash_type": 1}
        outputs = [_cast_output(graph, names, match, base)]
        if match.kind == "LayerNorm":
            op = "LayerNormalization"
            if match.beta is not None:
                inputs.append(affine_input(graph, names, match, f"{base}_bias", match.beta, match.compute_dtype))
            if match.extra_outputs:
                for role in ("mean", "inv_std"):
                    kept = match.extra_outputs.get(role)
                    outputs.append(kept if kept is not None else gs.Variable.empty())
                while outputs[-1].name == "":
                    outputs.pop()
        else:
            op = "RMSNormalization"
        node = gs.Node(op, base, attrs=attrs, inputs=inputs, outputs=outputs)
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
        gamma = _scale(graph, names, match, f"{base}_gamma")
        outputs = [_cast_output(graph, names, match, base)]
        if skip is None:
            inputs = [match.x, gamma]
            if match.kind == "LayerNorm" and match.beta is not None:
                inputs.append(affine_input(graph, names, match, f"{base}_beta", match.beta, dtype))
            attrs = spec.onnx_attrs(epsilon=match.epsilon, axis=match.axis)
        else:
            inputs = [skip.input, skip.skip, gamma]
            beta = match.beta
            if beta is None and skip.bias is not None:
                # The parser maps inputs by position, so a bias needs a beta slot in front of it.
                beta = ScalarFill(0.0)
            if beta is not None:
                inputs.append(affine_input(graph, names, match, f"{base}_beta", beta, dtype))
            if skip.bias is not None:
                inputs.append(affine_input(graph, names, match, f"{base}_bias", skip.bias, dtype))
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

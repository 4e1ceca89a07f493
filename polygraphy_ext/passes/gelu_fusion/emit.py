"""Replace a matched GELU by one node: ONNX Gelu (opset 20) or the BiasGelu TensorRT plugin.

Plugin node name, version, namespace, domain and fields come only from ``polygraphy_ext.plugins.specs``.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from polygraphy_ext.passes.gelu_fusion.bias import FoldedBias
from polygraphy_ext.passes.gelu_fusion.patterns import GeluMatch
from polygraphy_ext.passes.naming import UniqueNames


@dataclass
class Plan:
    """What one fused node reads and writes, settled before anything in the graph changes."""

    match: GeluMatch
    input: gs.Tensor  # the tensor the fused node (or its input Cast) reads
    input_dtype: Optional[np.dtype]
    compute_dtype: Optional[np.dtype]  # the type the fused node computes in
    output_dtype: Optional[np.dtype]
    bias: Optional[FoldedBias] = None  # folded into the plugin
    add_bias: Optional[gs.Tensor] = None  # a contrib op's bias that stays a separate Add


def _cast(graph: gs.Graph, names: UniqueNames, base: str, tensor, dtype: np.dtype, output=None) -> gs.Tensor:
    out = output if output is not None else gs.Variable(names(f"{base}_cast_out"), dtype=dtype, shape=tensor.shape)
    graph.nodes.append(
        gs.Node("Cast", names(f"{base}_cast"), attrs={"to": onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))},
                inputs=[tensor], outputs=[out])
    )
    return out


def _differs(a, b) -> bool:
    return a is not None and b is not None and np.dtype(a) != np.dtype(b)


def _node_input(graph: gs.Graph, names: UniqueNames, base: str, plan: Plan) -> gs.Tensor:
    tensor = plan.input
    if plan.add_bias is not None:
        total = gs.Variable(names(f"{base}_biased"), dtype=plan.input_dtype, shape=tensor.shape)
        graph.nodes.append(gs.Node("Add", names(f"{base}_add_bias"), inputs=[tensor, plan.add_bias], outputs=[total]))
        tensor = total
    if _differs(plan.input_dtype, plan.compute_dtype):
        tensor = _cast(graph, names, f"{base}_in", tensor, plan.compute_dtype)
    return tensor


def _node_output(graph: gs.Graph, names: UniqueNames, base: str, plan: Plan) -> gs.Tensor:
    output = plan.match.output
    if not _differs(plan.compute_dtype, plan.output_dtype):
        return output
    temp = gs.Variable(names(f"{base}_out"), dtype=plan.compute_dtype, shape=output.shape)
    _cast(graph, names, f"{base}_out", temp, plan.output_dtype, output=output)
    return temp


def emit_native(graph: gs.Graph, names: UniqueNames, plan: Plan) -> gs.Node:
    base = names(f"{plan.match.anchor.name or 'gelu'}_fused")
    inputs = [_node_input(graph, names, base, plan)]
    outputs = [_node_output(graph, names, base, plan)]
    node = gs.Node("Gelu", base, attrs={"approximate": plan.match.approximate}, inputs=inputs, outputs=outputs)
    graph.nodes.append(node)
    return node


def emit_plugin(graph: gs.Graph, names: UniqueNames, plan: Plan) -> gs.Node:
    from polygraphy_ext.plugins.specs import plugin_spec

    spec = plugin_spec("BiasGelu")
    base = names(f"{plan.match.anchor.name or spec.name}_fused")
    inputs = [_node_input(graph, names, base, plan)]
    bias = plan.bias
    if bias is not None:
        dtype = plan.compute_dtype or bias.value.dtype
        if isinstance(bias.tensor, gs.Constant) and len(bias.tensor.shape) == 1 and bias.value.dtype == dtype:
            # Already the plugin's [H] bias: keep the model's own tensor (and its external data, if any).
            inputs.append(bias.tensor)
        else:
            inputs.append(gs.Constant(names(f"{base}_bias"), np.ascontiguousarray(bias.value.astype(dtype))))
    outputs = [_node_output(graph, names, base, plan)]
    node = gs.Node(
        spec.name, base, attrs=spec.onnx_attrs(approximate=plan.match.approximate), inputs=inputs, outputs=outputs,
        domain=spec.onnx_domain,
    )
    graph.nodes.append(node)
    return node


EMITTERS = {"native": emit_native, "plugin": emit_plugin}

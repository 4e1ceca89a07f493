"""Which tensor the BiasGelu plugin reads, and whether the bias Add in front of the GELU folds into it.

A decomposed fp16 GELU often computes in fp32 behind a widening Cast (fp16 in, fp32 erf, fp16 out); the
plugin computes in fp32 internally for 16-bit I/O, so it reads the tensor before such Casts. The bias Add
(``MatMul -> Add(bias) -> GELU``) folds into the plugin's bias input when the bias is a constant that varies
over the last axis only and the biased sum has no other use.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import onnx_graphsurgeon as gs

from polygraphy_ext.passes.matching import GraphView
from polygraphy_ext.passes.matching.constants import constant_value, is_float_cast, is_float_type

# Casts that lose nothing: every value of the source type is a value of the target type.
_EXACT_WIDENINGS = {
    ("float16", "float32"), ("float16", "float64"), ("bfloat16", "float32"), ("bfloat16", "float64"),
    ("float32", "float64"),
}


@dataclass
class FoldedBias:
    input: gs.Tensor  # the Add's non-constant operand: the plugin's input
    value: np.ndarray  # 1-D, the size of the input's last dim
    tensor: gs.Tensor  # the bias as it appears in the graph (named in the report)
    add: Optional[gs.Node]  # the Add replaced with the chain (None for a contrib op's own bias)


def widened_source(view: GraphView, tensor) -> gs.Tensor:
    """The tensor before any chain of exact (widening) float Casts: fp16 -> fp32 loses nothing."""
    node = view.producer(tensor)
    while node is not None and is_float_cast(view, node):
        src, dst = view.dtype(node.inputs[0]), view.dtype(node.outputs[0])
        if src is None or dst is None or (src.name, dst.name) not in _EXACT_WIDENINGS:
            break
        tensor = node.inputs[0]
        node = view.producer(tensor)
    return tensor


def only_feeds(view: GraphView, tensor, nodes: Dict[int, gs.Node]) -> bool:
    """Whether every use of ``tensor`` is inside ``nodes``, looking through Casts that only feed them."""
    if view.is_graph_output(tensor) or not tensor.outputs:
        return False
    for consumer in tensor.outputs:
        if id(consumer) in nodes:
            continue
        if is_float_cast(view, consumer) and only_feeds(view, consumer.outputs[0], nodes):
            continue
        return False
    return True


def bias_over_last_axis(view: GraphView, data, bias) -> Tuple[Optional[np.ndarray], str]:
    """(bias as a 1-D array, "") if ``data + bias`` adds one value per element of the last axis, else (None, why)."""
    value = constant_value(view, bias)
    if value is None:
        return None, f"the bias {bias.name} is not a constant"
    if not is_float_type(value.dtype):
        return None, f"the bias {bias.name} has type {value.dtype}"
    shape = list(value.shape)
    rank = None if data.shape is None else len(data.shape)
    last = data.shape[-1] if rank else None
    if rank is not None and len(shape) > rank:
        return None, f"the bias {bias.name} of shape {shape} has a higher rank than the input and would broadcast it"
    if not shape or any(d != 1 for d in shape[:-1]):
        return None, f"the bias {bias.name} of shape {shape} does not broadcast over the last axis only"
    if not isinstance(last, (int, np.integer)) or last < 0:
        return None, f"the last dim of {data.name} is unknown (run shape inference), so the bias {bias.name} cannot be checked"
    if shape[-1] != int(last):
        return None, f"the bias {bias.name} of shape {shape} does not match the last dim {int(last)} of {data.name}"
    return value.reshape(-1), ""


def fold_add(view: GraphView, tensor, chain: Dict[int, gs.Node]) -> Tuple[Optional[FoldedBias], str]:
    """The bias Add producing ``tensor`` as a FoldedBias, or (None, why not) -- "" when there is no Add at all."""
    node = view.producer(tensor)
    if node is None or node.op != "Add" or len(node.inputs) != 2:
        return None, ""
    constant = [constant_value(view, t) is not None for t in node.inputs]
    if constant[0] == constant[1]:
        what = "two constants" if constant[0] else "two non-constant tensors"
        return None, f"the Add {node.name} in front adds {what}, so it is not folded as a bias"
    data, bias = (node.inputs[1], node.inputs[0]) if constant[0] else (node.inputs[0], node.inputs[1])
    if not only_feeds(view, tensor, chain):
        return None, f"the biased sum {tensor.name} is also used outside the GELU"
    value, why = bias_over_last_axis(view, data, bias)
    if value is None:
        return None, why
    return FoldedBias(data, value, bias, node), ""

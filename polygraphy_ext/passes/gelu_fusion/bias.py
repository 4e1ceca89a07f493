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

from polygraphy_ext.passes.matching import FLOAT_DTYPES, GraphView

_WIDER = {np.dtype(np.float16): 1, np.dtype(np.float32): 2, np.dtype(np.float64): 3}


@dataclass
class FoldedBias:
    input: gs.Tensor  # the Add's non-constant operand: the plugin's input
    value: np.ndarray  # 1-D, the size of the input's last dim
    tensor: gs.Tensor  # the bias as it appears in the graph (named in the report)
    add: Optional[gs.Node]  # the Add replaced with the chain (None for a contrib op's own bias)


def widened_source(view: GraphView, tensor) -> gs.Tensor:
    """The tensor before any chain of exact (widening) float Casts: fp16 -> fp32 loses nothing."""
    node = view.producer(tensor)
    while node is not None and view.is_float_cast(node):
        src, dst = view.dtype(node.inputs[0]), view.dtype(node.outputs[0])
        if src not in _WIDER or dst not in _WIDER or _WIDER[src] > _WIDER[dst]:
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
        if view.is_float_cast(consumer) and only_feeds(view, consumer.outputs[0], nodes):
            continue
        return False
    return True


def bias_over_last_axis(view: GraphView, data, bias) -> Tuple[Optional[np.ndarray], str]:
    """(bias as a 1-D array, "") if ``data + bias`` adds one value per element of the last axis, else (None, why)."""
    value = view.constant(bias)
    if value is None:
        return None, f"the bias {bias.name} is not a constant"
    if value.dtype not in FLOAT_DTYPES:
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
    constant = [view.constant(t) is not None for t in node.inputs]
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

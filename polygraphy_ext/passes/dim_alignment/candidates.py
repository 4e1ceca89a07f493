"""Which nodes are GEMM/conv candidates, and where their reduction (K / C_in) and output (N / C_out) dims live.

Axes of activations are negative (counted from the end) because ONNX broadcasting aligns shapes from the end:
an axis stays the same number as a tensor flows through elementwise ops with operands of lower rank.
"""

from dataclasses import dataclass
from typing import Optional, Union

import onnx_graphsurgeon as gs

from polygraphy_ext.passes.dim_alignment.constants import ConstantResolver

GEMM_OPS = ("MatMul", "Gemm")
CONV_OPS = ("Conv", "ConvTranspose")


@dataclass
class WeightedOp:
    """A GEMM or convolution with a constant weight."""

    node: gs.Node
    weight: gs.Constant
    data_axis: int  # negative axis of the data input holding K / C_in
    out_axis: int  # negative axis of the output holding N / C_out
    weight_in_axis: int  # weight axis that is multiplied with data_axis
    weight_out_axis: int  # weight axis that becomes out_axis
    in_features: int
    out_features: int
    groups: int = 1
    bias: Optional[gs.Constant] = None  # per-output bias (Conv B, Gemm C)

    @property
    def data(self) -> gs.Tensor:
        return self.node.inputs[0]

    @property
    def output(self) -> gs.Tensor:
        return self.node.outputs[0]

    @property
    def is_depthwise(self) -> bool:
        # One input channel per group and one output channel per input channel: a per-channel operation.
        return self.node.op == "Conv" and self.groups > 1 and self.groups == self.in_features == self.out_features


@dataclass
class ActivationGemm:
    """A GEMM whose operands are both computed at runtime (attention scores/context): reported, never changed."""

    node: gs.Node
    reason: str


def _optional_constant(node: gs.Node, index: int, constants: ConstantResolver):
    """The constant at an optional input, None when the input is absent, False when it is computed at runtime."""
    if len(node.inputs) <= index or node.inputs[index] is None or (
        isinstance(node.inputs[index], gs.Variable) and not node.inputs[index].name
    ):
        return None
    return constants.constant(node.inputs[index]) or False


def classify(node: gs.Node, constants: ConstantResolver) -> Union[WeightedOp, ActivationGemm, str, None]:
    """A WeightedOp, an ActivationGemm, a reason string for a candidate-op the pass cannot handle, or None.

    Weights and biases are seen through Identity/Constant/Transpose/Reshape/Cast chains (see constants.py)."""
    if node.op not in GEMM_OPS + CONV_OPS or len(node.inputs) < 2 or not node.outputs:
        return None
    weight = constants.constant(node.inputs[1])
    if node.op == "MatMul":
        if weight is None:
            if constants.resolve(node.inputs[0]) is not None:
                return "constant first operand (weight on the left) is not handled"
            return ActivationGemm(node, "activations-only GEMM (both operands computed at runtime): not changed")
        if len(weight.shape) != 2:
            return f"weight of rank {len(weight.shape)} (only 2-D MatMul weights are padded)"
        k, n = (int(d) for d in weight.shape)
        return WeightedOp(node, weight, -1, -1, 0, 1, k, n)
    if node.op == "Gemm":
        if weight is None:
            return ActivationGemm(node, "activations-only GEMM (B computed at runtime): not changed")
        if len(weight.shape) != 2:
            return "Gemm weight is not 2-D"
        trans_a, trans_b = int(node.attrs.get("transA", 0)), int(node.attrs.get("transB", 0))
        rows, cols = (int(d) for d in weight.shape)
        k, n = (cols, rows) if trans_b else (rows, cols)
        bias = _optional_constant(node, 2, constants)
        if bias is False:
            return "Gemm bias C is computed at runtime"
        return WeightedOp(
            node, weight, -2 if trans_a else -1, -1, 1 if trans_b else 0, 0 if trans_b else 1, k, n, bias=bias
        )
    # Conv / ConvTranspose
    if weight is None:
        return "convolution weight computed at runtime"
    if len(weight.shape) < 3:
        return "convolution weight of rank < 3"
    groups = int(node.attrs.get("group", 1))
    bias = _optional_constant(node, 2, constants)
    if bias is False:
        return "convolution bias computed at runtime"
    channel_axis = 1 - len(weight.shape)  # axis 1 of an N, C, spatial... activation
    if node.op == "Conv":
        c_out, c_in_per_group = int(weight.shape[0]), int(weight.shape[1])
        return WeightedOp(
            node, weight, channel_axis, channel_axis, 1, 0, c_in_per_group * groups, c_out, groups, bias
        )
    c_in, c_out_per_group = int(weight.shape[0]), int(weight.shape[1])
    return WeightedOp(node, weight, channel_axis, channel_axis, 0, 1, c_in, c_out_per_group * groups, groups, bias)

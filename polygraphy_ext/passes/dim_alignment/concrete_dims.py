"""Concrete dims: a Reshape/Expand target computed at runtime (or holding -1) whose value is provably fixed
becomes a constant, when a consumer needs that dim static (Conv channels/groups, MatMul/Gemm K).

The acceptance example is the UniFormer block ``LayerNorm -> Reshape(Concat(Shape(x)[0], H, W, -1)) ->
Transpose -> depthwise Conv``: with a dynamic batch TensorRT sees the channel dim as unknown and rejects the
conv ("group count must divide input channel count"), although ``-1`` is ``B*H*W*C / (B*H*W) = C``. Dims that
stay symbolic after the algebra (batch, sequence) are written as ``0`` (copy) or ``-1``, i.e. left dynamic.
"""

from typing import List, Optional, Set, Tuple

import numpy as np
import onnx_graphsurgeon as gs

from polygraphy_ext.passes.dim_alignment.constants import ConstantResolver
from polygraphy_ext.passes.dim_alignment.propagation import BINARY, UNARY
from polygraphy_ext.passes.dim_alignment.report import AlignReport, ConcreteDim, LeftAlone
from polygraphy_ext.passes.dim_alignment.symbolic import DimExpr, ShapeEvaluator, ShapeTable, product
from polygraphy_ext.passes.naming import UniqueNames

_SHAPE_PRESERVING = set(UNARY) | {
    "Cast",
    "Clip",
    "Dropout",
    "LayerNormalization",
    "Softmax",
    "LogSoftmax",
    "BatchNormalization",
    "InstanceNormalization",
}
_MAX_TRACE_NODES = 64


def _needed_axes(tensor, rank: int, shapes: ShapeTable) -> Tuple[Set[int], List[str]]:
    """Axes of ``tensor`` that flow (through transposes and shape-preserving ops) into a dim that a Conv's
    channels or a MatMul/Gemm reduction needs static; and the names of those consumers."""
    needed: Set[int] = set()
    consumers: List[str] = []
    stack = [(tensor, {axis: axis for axis in range(rank)})]
    seen = 0
    while stack and seen < _MAX_TRACE_NODES:
        current, origin = stack.pop()
        current_rank = len(origin)
        for node in current.outputs:
            seen += 1
            position = next(i for i, inp in enumerate(node.inputs) if inp is current)
            wanted = None
            if node.op in ("Conv", "ConvTranspose") and position == 0:
                wanted = 1
            elif node.op == "MatMul":
                wanted = current_rank - 1 if position == 0 else current_rank - 2
            elif node.op == "Gemm" and position < 2:
                transposed = int(node.attrs.get("transA" if position == 0 else "transB", 0))
                wanted = (0 if transposed else 1) if position == 0 else (1 if transposed else 0)
            if wanted is not None:
                if wanted in origin:
                    needed.add(origin[wanted])
                    consumers.append(node.name)
                continue
            if not node.outputs:
                continue
            if node.op == "Transpose":
                perm = node.attrs.get("perm", list(reversed(range(current_rank))))
                mapped = {new: origin[old] for new, old in enumerate(perm) if old in origin}
                stack.append((node.outputs[0], mapped))
            elif node.op in _SHAPE_PRESERVING and position == 0:
                stack.append((node.outputs[0], dict(origin)))
            elif node.op in BINARY:
                out_rank = shapes.rank(node.outputs[0]) or current_rank
                shift = out_rank - current_rank
                stack.append((node.outputs[0], {axis + shift: o for axis, o in origin.items()}))
    return needed, consumers


def _resolve_reshape(node, target: List[DimExpr], in_dims) -> Optional[List[Optional[DimExpr]]]:
    allow_zero = int(node.attrs.get("allowzero", 0))
    out: List[Optional[DimExpr]] = []
    inferred = None
    for index, dim in enumerate(target):
        if dim.is_static and dim.coeff == 0 and not allow_zero:
            if in_dims is None or index >= len(in_dims):
                return None
            out.append(in_dims[index])
        elif dim.is_static and dim.coeff == -1:
            inferred = index
            out.append(None)
        else:
            out.append(dim)
    if inferred is not None and in_dims is not None:
        out[inferred] = product(in_dims).divide(product(d for d in out if d is not None))
    return out


def _reshape_target(node, out: List[Optional[DimExpr]], in_dims) -> Optional[List[int]]:
    dynamic = [i for i, d in enumerate(out) if d is None or not d.is_static]
    allow_zero = int(node.attrs.get("allowzero", 0))
    target = []
    for index, dim in enumerate(out):
        if dim is not None and dim.is_static:
            target.append(dim.coeff)
        elif (
            len(dynamic) > 1
            and not allow_zero
            and dim is not None
            and in_dims is not None
            and index < len(in_dims)
            and in_dims[index] == dim
        ):
            target.append(0)  # copies the (dynamic) input dim at the same index
        else:
            target.append(-1)
    return target if target.count(-1) <= 1 else None


def _expand_target(out: List[DimExpr], in_dims) -> Optional[List[int]]:
    if in_dims is None:
        return None
    target = []
    for index, dim in enumerate(out):
        aligned = index - (len(out) - len(in_dims))
        if dim.is_static:
            target.append(dim.coeff)
        elif 0 <= aligned < len(in_dims) and in_dims[aligned] == dim:
            target.append(1)  # broadcasting keeps the input's own (dynamic) dim
        else:
            return None
    return target


def make_dims_concrete(
    graph: gs.Graph,
    shapes: ShapeTable,
    report: AlignReport,
    constants: Optional[ConstantResolver] = None,
    unique_name: Optional[UniqueNames] = None,
) -> None:
    evaluator = ShapeEvaluator(shapes)
    constants = constants or ConstantResolver()
    unique_name = unique_name or UniqueNames(graph.tensors())
    for node in list(graph.nodes):
        if node.op not in ("Reshape", "Expand") or len(node.inputs) < 2 or not node.outputs:
            continue
        literal = constants.value(node.inputs[1])
        if literal is not None and (node.op == "Expand" or not np.any(literal.reshape(-1) <= 0)):
            continue  # already a constant the builder can read
        value = evaluator.value(node.inputs[1])
        if value is None:
            report.left_alone.append(LeftAlone(node.name, node.op, "target shape is not computable from static shapes"))
            continue
        target = value[0]
        in_dims = shapes.dims(node.inputs[0])
        if node.op == "Reshape":
            out = _resolve_reshape(node, target, in_dims)
        else:
            out = target
        if out is None:
            report.left_alone.append(LeftAlone(node.name, node.op, "target shape does not resolve against the input"))
            continue
        out_rank = len(out) if node.op == "Reshape" else max(len(out), len(in_dims or []))
        needed, consumers = _needed_axes(node.outputs[0], out_rank, shapes)
        shift = out_rank - len(out)
        needed = {axis - shift for axis in needed if axis - shift >= 0}
        literal_axes = set()
        if literal is not None:
            literal_axes = {i for i, v in enumerate(literal.reshape(-1)) if v > 0}
        to_fix = sorted(needed - literal_axes)
        old_target = [str(d) for d in target]
        if not to_fix:
            report.left_alone.append(
                LeftAlone(node.name, node.op, "no Conv/MatMul/Gemm consumer needs its runtime dims static", old_target)
            )
            continue
        dynamic_needed = [i for i in to_fix if out[i] is None or not out[i].is_static]
        if dynamic_needed:
            report.left_alone.append(
                LeftAlone(
                    node.name,
                    node.op,
                    f"dim(s) {dynamic_needed} needed static by {consumers} are genuinely dynamic",
                    old_target,
                )
            )
            continue
        new_target = _reshape_target(node, out, in_dims) if node.op == "Reshape" else _expand_target(out, in_dims)
        if new_target is not None and _already(new_target, literal, target):
            continue  # the builder already reads these values: rewriting would change nothing
        if new_target is None:
            why = (
                "more than one dynamic dim: cannot be written as a constant"
                if node.op == "Reshape"
                else "a dynamic target dim that the input does not carry: cannot be written as a constant"
            )
            report.left_alone.append(LeftAlone(node.name, node.op, why, old_target))
            continue
        const = gs.Constant(
            unique_name(f"{node.name or node.outputs[0].name}_static_shape"), np.array(new_target, dtype=np.int64)
        )
        node.inputs[1] = const
        _set_static_dims(node.outputs[0], out)
        report.concrete_dims.append(ConcreteDim(node.name, node.op, old_target, new_target, consumers))


def _already(new_target: List[int], literal: Optional[np.ndarray], target: List[DimExpr]) -> bool:
    """True when the target already holds ``new_target``: as a literal, or computed from static dims only."""
    if literal is not None:
        return [int(v) for v in literal.reshape(-1)] == new_target
    return all(d.is_static for d in target) and [d.coeff for d in target] == new_target


def _set_static_dims(tensor, out: List[Optional[DimExpr]]) -> None:
    if tensor.shape is None or len(tensor.shape) != len(out):
        return
    tensor.shape = [d.coeff if d is not None and d.is_static else old for d, old in zip(out, tensor.shape)]

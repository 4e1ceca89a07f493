"""Graph edits for an accepted padding plan: padded copies of constants, boundary Slice/Pad nodes, shapes.

Constants are never edited in place: a weight may be shared (tied embeddings, or the one zero bias the TorchScript
exporter merges for several layers), so padded uses read a new constant and the original stays for everyone
else (``cleanup`` drops it when nothing uses it any more). Uses of one constant that need the same padding share
one padded copy; the report says for each padded constant whether it is shared and whether the original stays.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import onnx_graphsurgeon as gs

from polygraphy_ext.passes.dim_alignment.candidates import WeightedOp
from polygraphy_ext.passes.dim_alignment.constants import ConstantResolver
from polygraphy_ext.passes.dim_alignment.propagation import Region
from polygraphy_ext.passes.dim_alignment.report import TensorChange
from polygraphy_ext.passes.dim_alignment.symbolic import ShapeTable
from polygraphy_ext.passes.naming import UniqueNames


def padded_array(values: np.ndarray, axis: int, amount: int, fill: float = 0.0) -> np.ndarray:
    widths = [(0, 0)] * values.ndim
    widths[axis] = (0, amount)
    return np.pad(values, widths, constant_values=np.array(fill).astype(values.dtype))


def _shape_list(shape) -> List[object]:
    return [d if d is not None else "?" for d in shape] if shape is not None else ["?"]


@dataclass
class WeightPlan:
    """Zero rows/columns to append to one GEMM/conv weight; applied once, after every plan is decided."""

    wop: WeightedOp
    in_pad: int = 0
    out_pad: int = 0
    new_groups: Optional[int] = None
    changes: List[TensorChange] = field(default_factory=list)  # where to record what the weight became


# Ops a constant is read through (see constants.py); their consumers are the constant's real users.
_SEE_THROUGH = ("Identity", "Transpose", "Cast", "Reshape", "Squeeze", "Unsqueeze")


@dataclass
class _PaddedCopy:
    """One padded constant, the constant it was made from, and the report entries that name it."""

    constant: gs.Constant
    root: gs.Tensor
    uses: int = 0
    changes: List[TensorChange] = field(default_factory=list)


class GraphEditor:
    def __init__(self, graph: gs.Graph, shapes: ShapeTable, constants: ConstantResolver, names: UniqueNames):
        self.graph = graph
        self._shapes = shapes
        self._constants = constants
        self.unique_name = names
        self._weight_plans: Dict[int, WeightPlan] = {}
        self._padded: Dict[tuple, _PaddedCopy] = {}
        self._target_concats: Dict[int, gs.Tensor] = {}
        self.opset = int(graph.opset)


    def _new_constant(self, base: str, values: np.ndarray) -> gs.Constant:
        return gs.Constant(self.unique_name(base), np.ascontiguousarray(values))

    def weight_plan(self, wop: WeightedOp) -> WeightPlan:
        return self._weight_plans.setdefault(id(wop.node), WeightPlan(wop))

    # -- padding a region (zero-cost inside, Slice at its boundaries) -------------------------------------

    def apply_region(self, region: Region, changes: List[TensorChange]):
        amount = region.new - region.old
        for wop in region.producers:
            plan = self.weight_plan(wop)
            plan.out_pad += amount
            plan.changes = changes
        for wop in region.absorbers:
            plan = self.weight_plan(wop)
            plan.in_pad += amount
            plan.changes = changes
        for wop in region.depthwise:
            plan = self.weight_plan(wop)
            plan.out_pad += amount
            plan.new_groups = region.new
            plan.changes = changes
        for item in region.padded_constants:
            self._pad_constant_input(item.node, item.input_index, [(item.axis, amount, item.fill)], "bias", changes)
        for fix in region.reshape_fixes:
            self._rewrite_target(fix, region.new, changes)
        for name, (tensor, axis, _) in region.tensors.items():
            old_shape = self._shapes.shape(tensor)
            new_shape = self._grown(old_shape, axis, region.new)
            if name in region.boundaries:
                self._insert_slice(tensor, region.boundaries[name], axis, region.old, new_shape, changes)
            else:
                if tensor.shape is not None and len(tensor.shape) >= -axis:
                    tensor.shape = self._grown(tensor.shape, axis, region.new)
                if new_shape is not None:  # a tensor of unknown rank: its producer's weight change says it all
                    changes.append(TensorChange(name, _shape_list(old_shape), _shape_list(new_shape), "activation"))

    def _pad_constant_input(self, node: gs.Node, index: int, pads, role: str, changes: List[TensorChange]):
        """Make ``node`` read its constant input ``index`` padded by ``pads`` ((axis, amount, fill) each); uses of
        one constant that need the same padding get the same copy."""
        tensor = node.inputs[index]
        resolved = self._constants.resolve(tensor)
        key = (resolved.key, tuple(pads))
        copy = self._padded.get(key)
        if copy is None:
            values = resolved.values
            for axis, amount, fill in pads:
                values = padded_array(values, axis, amount, fill)
            copy = _PaddedCopy(self._new_constant(f"{tensor.name}_aligned", values), _root_of(tensor))
            self._padded[key] = copy
        node.inputs[index] = copy.constant
        copy.uses += 1
        change = TensorChange(tensor.name, list(resolved.values.shape), list(copy.constant.shape), role)
        copy.changes.append(change)
        changes.append(change)

    def _rewrite_target(self, fix, new: int, changes: List[TensorChange]):
        """A Reshape target whose last dim is a literal of the old width gets the new width (same integer type)."""
        target = fix.node.inputs[1]
        if fix.concat is None:
            values = np.array(self._constants.value(target))
            old_values = [int(v) for v in values.reshape(-1)]
            values[-1] = new
            fix.node.inputs[1] = self._new_constant(f"{target.name}_aligned", values)
            changes.append(TensorChange(target.name, old_values, [int(v) for v in values], "reshape target"))
            return
        key = (id(fix.concat),) + tuple(id(cast) for cast in fix.casts)
        if key not in self._target_concats:
            last = np.array(self._constants.value(fix.concat.inputs[-1]))
            old_last = [int(v) for v in last]
            last[-1] = new
            const = self._new_constant(f"{fix.concat.inputs[-1].name}_aligned", last)
            out = self._copy_node(fix.concat, list(fix.concat.inputs[:-1]) + [const])
            for cast in fix.casts:
                out = self._copy_node(cast, [out] + list(cast.inputs[1:]))
            self._target_concats[key] = out
            changes.append(TensorChange(fix.concat.inputs[-1].name, old_last, [int(v) for v in last], "reshape target"))
        fix.node.inputs[1] = self._target_concats[key]

    def _copy_node(self, node: gs.Node, inputs) -> gs.Variable:
        """A copy of one-output ``node`` reading ``inputs``; returns its new output."""
        old = node.outputs[0]
        out = gs.Variable(self.unique_name(f"{old.name}_aligned"), dtype=old.dtype, shape=old.shape)
        name = self.unique_name(f"{node.name or old.name}_aligned")
        self.graph.nodes.append(gs.Node(node.op, name, attrs=dict(node.attrs), inputs=inputs, outputs=[out]))
        return out

    @staticmethod
    def _grown(shape, axis, size):
        if shape is None or len(shape) < -axis:
            return None
        shape = list(shape)
        shape[axis] = size
        return shape

    def _insert_slice(self, tensor, true_size_users, axis, old, padded_shape, changes):
        """Region consumers read the padded tensor; consumers that need the true size (and the graph output,
        which keeps its name) read ``Slice(padded)``, which takes over the original tensor."""
        padded = gs.Variable(self.unique_name(f"{tensor.name}_aligned"), dtype=tensor.dtype, shape=padded_shape)
        producer = tensor.inputs[0]
        producer.outputs[producer.outputs.index(tensor)] = padded
        for consumer in list(tensor.outputs):
            # Identity, not ==: gs.Node.__eq__ cannot compare with None (the graph-output marker).
            if not any(user is consumer for user in true_size_users):
                # Index by index: onnx-graphsurgeon's input lists do not support slice assignment.
                for index, inp in enumerate(list(consumer.inputs)):
                    if inp is tensor:
                        consumer.inputs[index] = padded
        if padded_shape is not None:
            axis += len(padded_shape)  # Slice-1 (opset < 10) does not define negative axes
        name = self.unique_name(f"{tensor.name}_true_size")
        if self.opset < 10:
            attrs = {"starts": [0], "ends": [old], "axes": [axis]}
            node = gs.Node("Slice", name, attrs=attrs, inputs=[padded], outputs=[tensor])
        else:
            params = [
                gs.Constant(self.unique_name(f"{tensor.name}_slice_{what}"), np.array([v], dtype=np.int64))
                for what, v in (("starts", 0), ("ends", old), ("axes", axis))
            ]
            node = gs.Node("Slice", name, inputs=[padded] + params, outputs=[tensor])
        self.graph.nodes.append(node)
        old_shape = _shape_list(self._shapes.shape(tensor))
        changes.append(TensorChange(padded.name, old_shape, _shape_list(padded_shape), "activation"))
        changes.append(TensorChange(tensor.name, _shape_list(padded_shape), old_shape, "slice"))

    # -- padding a reduction dim at its start ---------------------------------------------------------------

    def apply_input_pad(self, wop: WeightedOp, new: int, rank: int, changes: List[TensorChange]):
        amount = new - wop.in_features
        data = wop.data
        axis = rank + wop.data_axis
        pads = np.zeros(2 * rank, dtype=np.int64)
        pads[rank + axis] = amount
        old_shape = self._shapes.shape(data)
        new_shape = self._grown(old_shape, wop.data_axis, new)
        padded = gs.Variable(self.unique_name(f"{data.name}_aligned"), dtype=data.dtype, shape=new_shape)
        name = self.unique_name(f"{data.name}_pad_to_{new}")
        if self.opset < 11:  # pads became an input in opset 11; opset 1 called the attribute "paddings"
            attrs = {"paddings" if self.opset < 2 else "pads": [int(p) for p in pads], "mode": "constant", "value": 0.0}
            node = gs.Node("Pad", name, attrs=attrs, inputs=[data], outputs=[padded])
        else:
            pads_const = gs.Constant(self.unique_name(f"{data.name}_pads"), pads)
            node = gs.Node("Pad", name, inputs=[data, pads_const], outputs=[padded])
        self.graph.nodes.append(node)
        wop.node.inputs[0] = padded
        plan = self.weight_plan(wop)
        plan.in_pad += amount
        plan.changes = changes
        changes.append(TensorChange(padded.name, _shape_list(old_shape), _shape_list(new_shape), "pad"))

    # -- weights ---------------------------------------------------------------------------------------------

    def finish(self):
        """Apply the weight plans, then say in the report how each padded constant is shared."""
        self._apply_weight_plans()
        for copy in self._padded.values():
            others = _readers_of(copy.root)
            notes = []
            if copy.uses > 1:
                notes.append(f"one padded copy of {copy.root.name} serves {copy.uses} uses")
            if others:
                notes.append(f"{copy.root.name} is shared: duplicated, its {others} other use(s) keep the original")
            for change in copy.changes:
                change.sharing = "; ".join(notes) or None
        self._padded.clear()

    def _apply_weight_plans(self):
        for plan in self._weight_plans.values():
            wop = plan.wop
            sides = ((wop.weight_in_axis, plan.in_pad), (wop.weight_out_axis, plan.out_pad))
            pads = [(axis, amount, 0.0) for axis, amount in sides if amount]
            if pads:
                self._pad_constant_input(wop.node, 1, pads, "weight", plan.changes)
            if plan.out_pad and wop.bias is not None:
                bias = np.asarray(wop.bias.values)
                # A Gemm C broadcast over N is already accounted for as the padded outputs' value.
                if bias.ndim and bias.shape[-1] == wop.out_features:
                    self._pad_constant_input(wop.node, 2, [(bias.ndim - 1, plan.out_pad, 0.0)], "bias", plan.changes)
            if plan.new_groups is not None:
                wop.node.attrs["group"] = plan.new_groups
        self._weight_plans.clear()


def _root_of(tensor) -> gs.Tensor:
    """The initializer or Constant node output a constant chain starts at."""
    while not isinstance(tensor, gs.Constant) and len(tensor.inputs) == 1 and tensor.inputs[0].op in _SEE_THROUGH:
        tensor = tensor.inputs[0].inputs[0]
    return tensor


def _readers_of(root: gs.Tensor) -> int:
    """How many nodes read ``root``'s value, through the see-through ops that carry it."""
    count, stack, seen = 0, [root], set()
    while stack:
        tensor = stack.pop()
        for user in tensor.outputs:
            if id(user) in seen:
                continue
            seen.add(id(user))
            if user.op in _SEE_THROUGH and user.inputs and user.inputs[0] is tensor and len(user.outputs) == 1:
                stack.append(user.outputs[0])
            else:
                count += 1
    return count

"""Graph edits for an accepted padding plan: padded copies of constants, boundary Slice/Pad nodes, shapes.

Constants are never edited in place: a weight may be shared (tied embeddings), so each padded use gets a new
constant and the original stays for everyone else (``cleanup`` drops it when nothing uses it any more).
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import onnx_graphsurgeon as gs

from polygraphy_ext.passes.dim_alignment.candidates import WeightedOp
from polygraphy_ext.passes.dim_alignment.propagation import Region, constant_of
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


class GraphEditor:
    def __init__(self, graph: gs.Graph, shapes: ShapeTable):
        self.graph = graph
        self._shapes = shapes
        self.unique_name = UniqueNames(graph.tensors().keys())
        self._weight_plans: Dict[int, WeightPlan] = {}
        self.opset = int(graph.opset)


    def _new_constant(self, base: str, values: np.ndarray) -> gs.Constant:
        return gs.Constant(self.unique_name(base), np.ascontiguousarray(values))

    def weight_plan(self, wop: WeightedOp) -> WeightPlan:
        return self._weight_plans.setdefault(id(wop.node), WeightPlan(wop))

    # -- padding a region (zero-cost inside, Slice at its boundaries) -------------------------------------

    def apply_region(self, region: Region, changes: List[TensorChange]):
        amount = region.new - region.old
        producer = self.weight_plan(region.producer)
        producer.out_pad += amount
        producer.changes = changes
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
            values = constant_of(item.node.inputs[item.input_index])
            old_name = item.node.inputs[item.input_index].name
            const = self._new_constant(f"{old_name}_aligned", padded_array(values, item.axis, amount, item.fill))
            item.node.inputs[item.input_index] = const
            changes.append(TensorChange(old_name, list(values.shape), list(const.shape), "bias"))
        for name, (tensor, axis, _) in region.tensors.items():
            old_shape = self._shapes.shape(tensor)
            new_shape = self._grown(old_shape, axis, region.new)
            if name in region.boundaries:
                self._insert_slice(tensor, region.boundaries[name], axis, region.old, new_shape, changes)
            else:
                if tensor.shape is not None and len(tensor.shape) >= -axis:
                    tensor.shape = self._grown(tensor.shape, axis, region.new)
                changes.append(TensorChange(name, _shape_list(old_shape), _shape_list(new_shape), "activation"))

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
                consumer.inputs[:] = [padded if inp is tensor else inp for inp in consumer.inputs]
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

    def apply_weight_plans(self):
        for plan in self._weight_plans.values():
            wop = plan.wop
            values = np.asarray(wop.weight.values)
            padded = values
            if plan.in_pad:
                padded = padded_array(padded, wop.weight_in_axis, plan.in_pad)
            if plan.out_pad:
                padded = padded_array(padded, wop.weight_out_axis, plan.out_pad)
            if padded is not values:
                const = self._new_constant(f"{wop.weight.name}_aligned", padded)
                wop.node.inputs[1] = const
                plan.changes.append(TensorChange(wop.weight.name, list(values.shape), list(padded.shape), "weight"))
            if plan.out_pad and wop.bias is not None:
                self._pad_bias(plan)
            if plan.new_groups is not None:
                wop.node.attrs["group"] = plan.new_groups
        self._weight_plans.clear()

    def _pad_bias(self, plan: WeightPlan):
        wop = plan.wop
        bias = np.asarray(wop.bias.values)
        if bias.ndim == 0 or bias.shape[-1] != wop.out_features:
            return  # a Gemm C broadcast over N: already accounted for as the padded outputs' value
        padded = padded_array(bias, bias.ndim - 1, plan.out_pad)
        wop.node.inputs[2] = self._new_constant(f"{wop.bias.name}_aligned", padded)
        plan.changes.append(TensorChange(wop.bias.name, list(bias.shape), list(padded.shape), "bias"))

"""Write the strongly typed model: every node either wholly in the low type or wholly FP32, one Cast per
tensor and destination type at each boundary, weights stored in the type their consumers read."""

from typing import Dict, List, Optional, Set, Tuple

import numpy as np
import onnx
from onnx import helper, numpy_helper

from polygraphy_ext.passes.precision.dtypes import FLOAT, LowType
from polygraphy_ext.passes.precision.model_index import ModelIndex


def tensor_types(index: ModelIndex, low_nodes: Set[str], keep_io_types: bool):
    """(home, wants): the type each FP32 tensor is produced/stored in, and the set of types its readers need.

    Graph outputs count as readers; a subgraph reading an outer tensor needs FP32 (its node is FP32).
    """
    wants = {name: _wants(index, low_nodes, name, keep_io_types) for name in index.float_tensors}
    home = {name: _home(index, low_nodes, name, keep_io_types, wants[name]) for name in index.float_tensors}
    return home, wants


def _wants(index: ModelIndex, low_nodes: Set[str], name: str, keep_io_types: bool) -> Set[int]:
    low = index.low.onnx_type
    needed = set()
    for node_index, pos in index.consumers.get(name, ()):
        info = index.nodes[node_index]
        needed.add(low if info.name in low_nodes and pos in info.low_inputs else FLOAT)
    if name in index.graph_outputs:
        needed.add(FLOAT if keep_io_types else low)
    return needed


def _home(index: ModelIndex, low_nodes: Set[str], name: str, keep_io_types: bool, wants: Set[int]) -> int:
    low = index.low.onnx_type
    if name in index.producer:
        node_index, pos = index.producer[name]
        info = index.nodes[node_index]
        if info.op == "Constant":  # like a weight: stored in the type every reader takes, else FP32
            return low if wants == {low} else FLOAT
        return low if info.name in low_nodes and pos in info.low_outputs else FLOAT
    if name in index.initializers:
        return low if wants == {low} else FLOAT
    return FLOAT if keep_io_types else low  # a graph input


def smooth_islands(index: ModelIndex, low_nodes: Set[str], movable: Set[str], keep_io_types: bool) -> Set[str]:
    """Names in ``movable`` (copies among ``low_nodes``) that sit between FP32 writers and FP32 readers only:
    converting them would only add a Cast pair around a copy. Repeated until nothing moves (a chain of copies
    joins from its FP32 end)."""
    current = set(low_nodes)
    moved: Set[str] = set()

    def fp32_home(tensor):
        return _home(index, current, tensor, keep_io_types, _wants(index, current, tensor, keep_io_types)) == FLOAT

    changed = True
    while changed:
        changed = False
        for name in sorted(movable - moved):
            info = index.by_name[name]
            if all(fp32_home(t) for t in info.float_inputs()) and all(
                _wants(index, current, t, keep_io_types) <= {FLOAT} for t in info.float_outputs()
            ):
                current.discard(name)
                moved.add(name)
                changed = True
    return moved


class _Names:
    def __init__(self, model):
        self.used = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer}
        for node in model.graph.node:
            self.used.update(node.output)
            self.used.add(node.name)

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name)
        return name


def _type_tag(low: LowType, elem_type: int) -> str:
    return "fp32" if elem_type == FLOAT else low.name


def convert(model: onnx.ModelProto, index: ModelIndex, low_nodes: Set[str], keep_io_types: bool) -> onnx.ModelProto:
    """A new model with ``low_nodes`` in the low type; ``model`` is not modified."""
    low = index.low
    home, wants = tensor_types(index, low_nodes, keep_io_types)
    names = _Names(model)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph

    # Graph outputs produced in the other type: the producer writes an internal name, a Cast writes the output.
    renamed: Dict[str, str] = {}
    for name in index.graph_outputs:
        want = FLOAT if keep_io_types else low.onnx_type
        if name in home and home[name] != want and name in index.producer:
            renamed[name] = names.fresh(f"{name}_{_type_tag(low, home[name])}")

    def home_name(name):
        return renamed.get(name, name)

    cast_of: Dict[Tuple[str, int], str] = {}
    casts_after: Dict[Optional[int], List[onnx.NodeProto]] = {}
    for name in sorted(index.float_tensors):
        if name not in home:
            continue
        for want in sorted(wants[name] - {home[name]}):
            if name in renamed and want != home[name] and want == (FLOAT if keep_io_types else low.onnx_type):
                target = name
            else:
                target = names.fresh(f"{name}_to_{_type_tag(low, want)}")
            cast_of[(name, want)] = target
            cast = helper.make_node(
                "Cast", [home_name(name)], [target], name=names.fresh(f"{target}_cast"), to=want
            )
            where = index.producer.get(name, (None,))[0]
            casts_after.setdefault(where, []).append(cast)

    new_nodes: List[onnx.NodeProto] = list(casts_after.get(None, []))
    for info, node in zip(index.nodes, graph.node):
        is_low = info.name in low_nodes
        for pos, name in enumerate(node.input):
            if name not in home:
                continue
            want = low.onnx_type if is_low and pos in info.low_inputs else FLOAT
            node.input[pos] = cast_of[(name, want)] if want != home[name] else home_name(name)
        for pos, name in enumerate(node.output):
            if name in renamed:
                node.output[pos] = renamed[name]
        for name in info.implicit_inputs:
            if name in home and home[name] != FLOAT:
                _rename_reads(node, name, cast_of[(name, FLOAT)])
        if is_low:
            _lower_attributes(node, low)
        elif info.op == "Constant" and node.output and home.get(node.output[0]) == low.onnx_type:
            _lower_constant(node, low)
        new_nodes.append(node)
        new_nodes.extend(casts_after.get(info.index, []))
    del graph.node[:]
    graph.node.extend(new_nodes)

    for init in graph.initializer:
        if home.get(init.name) == low.onnx_type:
            init.CopyFrom(_lower_tensor(init, low))
    for value in graph.input:
        if value.name in home and home[value.name] != FLOAT:
            value.type.tensor_type.elem_type = home[value.name]
    for value in graph.output:
        if value.name in home:
            value.type.tensor_type.elem_type = FLOAT if keep_io_types else low.onnx_type
    for value in graph.value_info:
        if value.name in home:
            value.type.tensor_type.elem_type = home[value.name]
            value.name = home_name(value.name)
    return out


def _rename_reads(node: onnx.NodeProto, old: str, new: str):
    for attr in node.attribute:
        for sub in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
            _rename_in_graph(sub, old, new)


def _rename_in_graph(graph: onnx.GraphProto, old: str, new: str):
    if old in {i.name for i in graph.input} | {i.name for i in graph.initializer}:
        return  # shadowed
    for node in graph.node:
        for pos, name in enumerate(node.input):
            if name == old:
                node.input[pos] = new
        if old in node.output:
            return
        _rename_reads(node, old, new)


def _lower_tensor(tensor: onnx.TensorProto, low: LowType) -> onnx.TensorProto:
    array = numpy_helper.to_array(tensor)
    with np.errstate(over="ignore"):
        lowered = numpy_helper.from_array(array.astype(low.numpy_dtype()), tensor.name)
    return lowered


def _lower_attributes(node: onnx.NodeProto, low: LowType):
    for attr in node.attribute:
        if node.op_type == "Cast" and attr.name == "to" and attr.i == FLOAT:
            attr.i = low.onnx_type
        elif node.op_type == "ConstantOfShape" and attr.name == "value" and attr.t.data_type == FLOAT:
            attr.t.CopyFrom(_lower_tensor(attr.t, low))
        elif node.op_type == "LayerNormalization" and attr.name == "stash_type":
            attr.i = FLOAT  # FP32 statistics: TensorRT's normalization layer computes in FP32 (docs/to-fp16.md)
    if node.op_type == "ConstantOfShape" and not any(a.name == "value" for a in node.attribute):
        # The default value is an FP32 zero: an explicit low-type zero makes the output low.
        node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(np.zeros(1, low.numpy_dtype()))))


def _lower_constant(node: onnx.NodeProto, low: LowType):
    for attr in list(node.attribute):
        if attr.name == "value":
            attr.t.CopyFrom(_lower_tensor(attr.t, low))
        elif attr.name in ("value_float", "value_floats"):
            values = np.asarray(attr.f if attr.name == "value_float" else list(attr.floats), np.float32)
            node.attribute.remove(attr)
            node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(values.astype(low.numpy_dtype()))))

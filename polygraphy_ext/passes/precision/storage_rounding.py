"""Run any FP16/BF16 ONNX model as TensorRT stores it: every 16-bit tensor rounded, every op computed in FP32.

onnxruntime on CPU is no such reference by itself: it has no 16-bit kernels for most ops, runs them in FP32
between Casts it inserts, and then removes the Cast pairs between two such ops, so a value that overflows
FP16 between two ops (x*x before a ReduceMean) never becomes inf there. ``storage_rounded`` rewrites a
converted model (ours or another tool's) into an FP32 model whose every formerly 16-bit tensor goes through
a Cast to its 16-bit type and back: what an engine that stores the tensor in 16 bits computes, up to the
order of operations inside kernels.
"""

from typing import Dict

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from polygraphy_ext.passes.precision.dtypes import FLOAT

LOW_TYPES = (TensorProto.FLOAT16, TensorProto.BFLOAT16)


def _tensor_types(model: onnx.ModelProto) -> Dict[str, int]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # > 2 GB or an op onnx cannot infer: declared types only
        inferred = model
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(graph.value_info) + list(graph.input) + list(graph.output)}
    types.update({init.name: init.data_type for init in graph.initializer})
    return types


def _as_float(tensor: onnx.TensorProto) -> onnx.TensorProto:
    return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name)


def storage_rounded(model: onnx.ModelProto) -> onnx.ModelProto:
    """An FP32 copy of ``model`` that rounds every 16-bit tensor through its type; same input/output names.

    16-bit graph inputs and outputs become FP32: inputs are rounded to their 16-bit type on entry, outputs carry
    16-bit values.
    """
    types = _tensor_types(model)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    used = set(types) | {n for node in graph.node for n in node.output}
    counter = [0]

    def fresh(base):
        while True:
            counter[0] += 1
            name = f"{base}__rnd{counter[0]}"
            if name not in used:
                used.add(name)
                return name

    def round_trip(source, target, low):
        mid = fresh(target)
        return [
            helper.make_node("Cast", [source], [mid], to=low),
            helper.make_node("Cast", [mid], [target], to=FLOAT),
        ]

    nodes = []
    renamed_inputs = {}
    for value in graph.input:
        low = types.get(value.name)
        if low in LOW_TYPES and value.name not in {i.name for i in graph.initializer}:
            inner = fresh(value.name)
            renamed_inputs[value.name] = inner
            nodes.extend(round_trip(value.name, inner, low))
            value.type.tensor_type.elem_type = FLOAT
    for init in graph.initializer:
        if init.data_type in LOW_TYPES:
            init.CopyFrom(_as_float(init))  # exact: the values are already 16-bit ones
    for node in graph.node:
        for pos, name in enumerate(node.input):
            if name in renamed_inputs:
                node.input[pos] = renamed_inputs[name]
        rounded = []
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i in LOW_TYPES:
                attr.i = FLOAT
            elif attr.name == "value" and attr.t.data_type in LOW_TYPES:
                attr.t.CopyFrom(_as_float(attr.t))
        for pos, name in enumerate(node.output):
            low = types.get(name)
            if name and low in LOW_TYPES:
                raw = fresh(name)
                node.output[pos] = raw
                rounded.extend(round_trip(raw, name, low))
        nodes.append(node)
        nodes.extend(rounded)
    del graph.node[:]
    graph.node.extend(nodes)
    for value in list(graph.output) + list(graph.value_info):
        if value.type.tensor_type.elem_type in LOW_TYPES:
            value.type.tensor_type.elem_type = FLOAT
    return out

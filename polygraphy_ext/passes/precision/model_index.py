"""Who produces and consumes each tensor of a model's main graph, which tensors are FP32, and which FP32
inputs/outputs of each node may take the low-precision type according to the node's ONNX schema."""

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

import onnx
from onnx import defs

from polygraphy_ext.passes.precision.dtypes import LowType

DEFAULT_DOMAINS = ("", "ai.onnx")
# Outputs whose type a schema ties to the node's computation precision rather than to its data: the
# LayerNormalization statistics (type U) are what stash_type=1 keeps FP32.
_FIXED_FP32_OUTPUTS = {"LayerNormalization": {1, 2}}


@dataclass
class NodeInfo:
    index: int  # position in the (topologically sorted) main graph
    node: onnx.NodeProto
    # Positions of FP32 inputs/outputs the schema allows in the low type; FP32 ones it does not allow.
    low_inputs: List[int] = field(default_factory=list)
    low_outputs: List[int] = field(default_factory=list)
    fixed_inputs: List[int] = field(default_factory=list)
    fixed_outputs: List[int] = field(default_factory=list)
    implicit_inputs: Set[str] = field(default_factory=set)  # outer-scope names its subgraphs read
    schema_missing: bool = False

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def op(self) -> str:
        return self.node.op_type

    def float_inputs(self) -> List[str]:
        return [self.node.input[i] for i in self.low_inputs + self.fixed_inputs]

    def float_outputs(self) -> List[str]:
        return [self.node.output[i] for i in self.low_outputs + self.fixed_outputs]


def opset_of(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in DEFAULT_DOMAINS:
            return entry.version
    return 1


def _formal_type(params, position: int) -> Optional[str]:
    if not params:
        return None
    if position < len(params):
        return params[position].type_str
    last = params[-1]
    return last.type_str if last.option == defs.OpSchema.FormalParameterOption.Variadic else None


def _subgraph_reads(graph: onnx.GraphProto, defined: Set[str], reads: Set[str]):
    defined = set(defined) | {i.name for i in graph.input} | {i.name for i in graph.initializer}
    for node in graph.node:
        for name in node.input:
            if name and name not in defined:
                reads.add(name)
        for attr in node.attribute:
            for sub in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                _subgraph_reads(sub, defined | set(node.output), reads)
        defined.update(node.output)


class ModelIndex:
    """Built once per model; ``float_tensors`` are the FP32 tensors as measured (or declared)."""

    def __init__(self, model: onnx.ModelProto, float_tensors: Set[str], low: LowType):
        self.model = model
        self.low = low
        self.opset = opset_of(model)
        graph = model.graph
        self.float_tensors = set(float_tensors)
        self.initializers = {init.name: init for init in graph.initializer}
        self.graph_inputs = [i.name for i in graph.input if i.name not in self.initializers]
        self.graph_outputs = [o.name for o in graph.output]
        self.producer: Dict[str, Tuple[int, int]] = {}
        self.consumers: Dict[str, List[Tuple[int, int]]] = defaultdict(list)  # position -1: read by a subgraph
        self.nodes: List[NodeInfo] = []
        for index, node in enumerate(graph.node):
            info = NodeInfo(index, node)
            for attr in node.attribute:
                for sub in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                    _subgraph_reads(sub, set(), info.implicit_inputs)
            self._classify(info)
            for pos, name in enumerate(node.output):
                if name:
                    self.producer[name] = (index, pos)
            for pos, name in enumerate(node.input):
                if name:
                    self.consumers[name].append((index, pos))
            for name in info.implicit_inputs:
                self.consumers[name].append((index, -1))
            self.nodes.append(info)
        self.by_name = {info.name: info for info in self.nodes}

    def _classify(self, info: NodeInfo):
        node = info.node
        schema = None
        if node.domain in DEFAULT_DOMAINS:
            try:
                schema = defs.get_schema(node.op_type, self.opset, node.domain)
            except Exception:  # onnx raises SchemaError for unknown ops
                schema = None
        info.schema_missing = schema is None
        allowed = {}
        if schema is not None:
            allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
        fixed_outputs = _FIXED_FP32_OUTPUTS.get(node.op_type, set())
        for kind, names, params, low_list, fixed_list in (
            ("in", node.input, schema.inputs if schema else None, info.low_inputs, info.fixed_inputs),
            ("out", node.output, schema.outputs if schema else None, info.low_outputs, info.fixed_outputs),
        ):
            for pos, name in enumerate(names):
                if not name or name not in self.float_tensors:
                    continue
                type_str = _formal_type(params, pos)
                convertible = type_str in allowed and self.low.type_str in allowed[type_str]
                if kind == "out" and pos in fixed_outputs:
                    convertible = False
                (low_list if convertible else fixed_list).append(pos)

    def is_float(self, name: str) -> bool:
        return bool(name) and name in self.float_tensors

"""One FP32 model that behaves like any choice of low-precision nodes: every candidate node rounds its
convertible inputs and outputs through the low type when its boolean switch (a graph input) is on.

This is what the converted model computes in onnxruntime on CPU, which has no FP16 arithmetic for most ops
and runs them in FP32 between Casts (docs/to-fp16.md), so one session answers every trial of the search:
no model is rewritten or reloaded per trial.
"""

from typing import Dict, List, Sequence, Set

import numpy as np
import onnx
from onnx import helper

from polygraphy_ext.passes.precision.dtypes import FLOAT
from polygraphy_ext.passes.precision.measure import AllTensorsSession, ort_session
from polygraphy_ext.passes.precision.model_index import ModelIndex

_MIN_OPSET_FOR_WHERE = 9


def switch_name(node_name: str) -> str:
    return f"__pgx_low__{node_name}"


def build_emulation_model(model: onnx.ModelProto, index: ModelIndex, candidates: Sequence[str], keep_io_types: bool):
    """A copy of ``model`` with a scalar bool input per candidate node (named by ``switch_name``)."""
    low_type = index.low.onnx_type
    emu = onnx.ModelProto()
    emu.CopyFrom(model)
    for entry in emu.opset_import:
        if entry.domain in ("", "ai.onnx") and entry.version < max(_MIN_OPSET_FOR_WHERE, index.low.min_opset):
            entry.version = max(_MIN_OPSET_FOR_WHERE, index.low.min_opset)
    graph = emu.graph
    used = {n for node in graph.node for n in node.output} | {i.name for i in graph.input}
    used |= {i.name for i in graph.initializer}

    def fresh(base):
        name, k = base, 1
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        return name

    rounded: Dict[str, str] = {}
    extra: List[onnx.NodeProto] = []

    def round_trip(name):
        if name not in rounded:
            low = fresh(f"{name}__emu_low")
            back = fresh(f"{name}__emu_rt")
            extra.append(helper.make_node("Cast", [name], [low], to=low_type))
            extra.append(helper.make_node("Cast", [low], [back], to=FLOAT))
            rounded[name] = back
        return rounded[name]

    candidate_set = set(candidates)
    new_nodes: List[onnx.NodeProto] = []
    if not keep_io_types:  # the graph's FP32 inputs arrive already rounded
        for name in index.graph_inputs:
            if name in index.float_tensors:
                _reroute_readers(graph, name, round_trip(name))
        new_nodes.extend(extra)
        extra.clear()
    for info, node in zip(index.nodes, list(graph.node)):
        if info.name not in candidate_set:
            new_nodes.append(node)
            continue
        switch = switch_name(info.name)
        graph.input.append(helper.make_tensor_value_info(switch, onnx.TensorProto.BOOL, []))
        for pos in info.low_inputs:
            name = node.input[pos]
            selected = fresh(f"{name}__emu_in")
            extra.append(helper.make_node("Where", [switch, round_trip(name), name], [selected]))
            node.input[pos] = selected
        new_nodes.extend(extra)
        extra.clear()
        new_nodes.append(node)
        for pos in info.low_outputs:
            name = node.output[pos]
            raw = fresh(f"{name}__emu_raw")
            node.output[pos] = raw
            extra.append(helper.make_node("Where", [switch, round_trip(raw), raw], [name]))
        new_nodes.extend(extra)
        extra.clear()
    if not keep_io_types:
        for out in graph.output:
            if out.name in index.float_tensors:
                _round_output(graph, out.name, new_nodes, fresh, low_type)
    del graph.node[:]
    graph.node.extend(new_nodes)
    return emu


def _reroute_readers(graph, name, new_name):
    for node in graph.node:
        for pos, current in enumerate(node.input):
            if current == name:
                node.input[pos] = new_name


def _round_output(graph, name, nodes, fresh, low_type):
    inner = fresh(f"{name}__emu_out")
    for node in nodes:
        for pos, current in enumerate(node.output):
            if current == name:
                node.output[pos] = inner
        for pos, current in enumerate(node.input):
            if current == name:
                node.input[pos] = inner
    low = fresh(f"{name}__emu_outlow")
    nodes.append(helper.make_node("Cast", [inner], [low], to=low_type))
    nodes.append(helper.make_node("Cast", [low], [name], to=FLOAT))


class Emulator:
    """Runs the emulation model for a given set of low-precision nodes."""

    def __init__(self, model, index: ModelIndex, candidates: Sequence[str], keep_io_types: bool, chunk: int):
        self.candidates = list(candidates)
        self.emulation_model = build_emulation_model(model, index, self.candidates, keep_io_types)
        # Trials fetch only the graph outputs; a session that exposes every tensor would keep them all alive.
        self.session = ort_session(self.emulation_model)
        self.output_names = [o.name for o in model.graph.output]
        self._chunk = chunk
        self._all_tensors = None
        self.runs = 0

    def _feeds(self, feeds, low_nodes: Set[str]):
        full = dict(feeds)
        for name in self.candidates:
            full[switch_name(name)] = np.array(name in low_nodes)
        return full

    def outputs(self, feeds, low_nodes: Set[str]) -> Dict[str, np.ndarray]:
        self.runs += 1
        return dict(zip(self.output_names, self.session.run(self.output_names, self._feeds(feeds, low_nodes))))

    def tensors(self, feeds, low_nodes: Set[str], names: Sequence[str]):
        """Yield {name: array} chunks of the given tensors (original names: what the node wrote after rounding)."""
        if self._all_tensors is None:
            self._all_tensors = AllTensorsSession(self.emulation_model, self._chunk)
        full = self._feeds(feeds, low_nodes)
        for chunk in self._all_tensors.chunks(list(names)):
            self.runs += 1
            yield self._all_tensors.run(chunk, full)

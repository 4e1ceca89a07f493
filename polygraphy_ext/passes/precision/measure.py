"""Run the FP32 model once per batch in one onnxruntime session that exposes every intermediate tensor, and
keep only what the conversion needs: each FP32 tensor's running max |value| and shape, and the outputs."""

from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Set, Tuple

import numpy as np
import onnx

from polygraphy_ext.passes.precision.dtypes import FLOAT

# Intermediates fetched per run: bounds the memory held at once (each fetched tensor is reduced to a scalar
# before the next chunk runs) at the price of re-running the model once per chunk on large graphs.
DEFAULT_CHUNK = 512


class MeasureError(Exception):
    pass


def expose_all_tensors(model: onnx.ModelProto) -> Tuple[onnx.ModelProto, List[str]]:
    """A copy of ``model`` whose graph outputs also include every main-graph node output; and their names."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    present = {o.name for o in exposed.graph.output}
    names = []
    for node in exposed.graph.node:
        for name in node.output:
            if name and name not in present:
                present.add(name)
                names.append(name)
                exposed.graph.output.add().name = name  # untyped: onnxruntime takes the type it infers
    return exposed, names


def ort_session(model: onnx.ModelProto):
    """A CPU onnxruntime session of ``model`` with graph optimizations off (they would fuse away the Casts
    whose rounding the conversion is about) and onnxruntime's own logging silenced (errors come back to us
    as exceptions, reported as one line)."""
    import os
    import tempfile

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    try:
        data = model.SerializeToString()
    except ValueError:  # > 2 GB: onnxruntime must read it from disk
        with tempfile.TemporaryDirectory(prefix="pgx-to-fp16-") as tmp:
            path = os.path.join(tmp, "model.onnx")
            onnx.save(model, path, save_as_external_data=True, location="model.onnx.data")
            return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


class AllTensorsSession:
    """One onnxruntime session that can fetch any main-graph tensor, in chunks of ``chunk`` names per run."""

    def __init__(self, model: onnx.ModelProto, chunk: int = DEFAULT_CHUNK):
        exposed, self.intermediates = expose_all_tensors(model)
        self.outputs = [o.name for o in model.graph.output]
        self.chunk = max(1, int(chunk))
        self.session = ort_session(exposed)

    def run(self, names: Sequence[str], feeds) -> Dict[str, np.ndarray]:
        return dict(zip(names, self.session.run(list(names), feeds)))

    def chunks(self, names: Sequence[str]):
        for start in range(0, len(names), self.chunk):
            yield names[start : start + self.chunk]


@dataclass
class Measurements:
    max_abs: Dict[str, float] = field(default_factory=dict)  # FP32 tensor -> max |value| over all batches
    shapes: Dict[str, Tuple[int, ...]] = field(default_factory=dict)  # of the first batch
    float_tensors: Set[str] = field(default_factory=set)
    reference: List[Dict[str, np.ndarray]] = field(default_factory=list)  # graph outputs per batch

    def update(self, name: str, value: np.ndarray):
        if name not in self.shapes:
            self.shapes[name] = tuple(value.shape)
        if value.dtype != np.float32:
            return
        self.float_tensors.add(name)
        peak = _max_abs(value)
        self.max_abs[name] = max(self.max_abs.get(name, 0.0), peak)


def _max_abs(value: np.ndarray) -> float:
    if value.size == 0:
        return 0.0
    with np.errstate(invalid="ignore"):
        peak = np.nanmax(np.abs(value)) if np.isnan(value).any() else np.max(np.abs(value))
    return float(peak) if np.isfinite(peak) or np.isinf(peak) else 0.0


def measure(model: onnx.ModelProto, batches: Sequence[dict], chunk: int = DEFAULT_CHUNK):
    """(Measurements, AllTensorsSession) of ``model`` (weights loaded) on ``batches`` (feed dicts)."""
    if not batches:
        raise MeasureError("the data loader gave no input batches")
    try:
        session = AllTensorsSession(model, chunk)
    except Exception as err:
        raise MeasureError(f"onnxruntime cannot load the model: {_first_line(err)}") from None
    found = Measurements()
    for init in model.graph.initializer:
        if init.data_type == FLOAT:
            found.update(init.name, onnx.numpy_helper.to_array(init))
    for inp in model.graph.input:
        if inp.type.tensor_type.elem_type == FLOAT:
            found.float_tensors.add(inp.name)
    for feeds in batches:
        for name, value in feeds.items():
            found.update(name, np.asarray(value))
        try:
            outputs = session.run(session.outputs, feeds)
            found.reference.append(outputs)
            for name, value in outputs.items():
                found.update(name, value)
            for names in session.chunks(session.intermediates):
                for name, value in session.run(names, feeds).items():
                    found.update(name, value)
        except Exception as err:
            raise MeasureError(
                f"onnxruntime cannot run the FP32 model on the given inputs: {_first_line(err)} (give inputs the "
                "model accepts: --val-range NAME:[LO,HI], --input-shapes, --data-loader-script)"
            ) from None
    return found, session


def _first_line(err) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__

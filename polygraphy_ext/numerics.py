"""Numerical equivalence of two ONNX models in onnxruntime, on inputs chosen to break normalizations.

Used by ``--check`` of the surgeon subtools and by the tests: a rewrite is only trusted if the rewritten
model computes the same outputs as the original on random inputs AND on rows that stress the numerics
(nearly constant rows, where variance cancellation shows, and rows with a large mean, where E[x^2]-E[x]^2
and fp16 overflows show).
"""

import os
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

INPUT_KINDS = ("random", "low_variance", "large_mean")
DEFAULT_DYNAMIC_DIM = 2


@dataclass
class OutputDiff:
    input_kind: str
    output: str
    max_abs_err: float
    max_rel_err: float
    ok: bool
    shape_ok: bool = True
    nan_mismatch: bool = False

    def to_dict(self):
        return dict(self.__dict__)


@dataclass
class NumericReport:
    atol: float
    rtol: float
    diffs: List[OutputDiff] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.diffs) and all(diff.ok for diff in self.diffs)

    def worst(self) -> Optional[OutputDiff]:
        return max(self.diffs, key=lambda d: (not d.ok, d.max_abs_err), default=None)

    def summary(self) -> str:
        worst = self.worst()
        if worst is None:
            return "no outputs were compared"
        verdict = "match" if self.ok else "DIFFER"
        return (
            f"outputs {verdict} (atol={self.atol:g}, rtol={self.rtol:g}; {len(self.diffs)} output/input-kind pairs; "
            f"worst: {worst.output} on {worst.input_kind} inputs, max abs err {worst.max_abs_err:.3g}, "
            f"max rel err {worst.max_rel_err:.3g})"
        )

    def to_dict(self):
        return {
            "ok": self.ok,
            "atol": self.atol,
            "rtol": self.rtol,
            "summary": self.summary(),
            "diffs": [diff.to_dict() for diff in self.diffs],
        }


_ONNX_TO_NUMPY = {
    1: np.float32,
    2: np.uint8,
    3: np.int8,
    5: np.int16,
    6: np.int32,
    7: np.int64,
    9: np.bool_,
    10: np.float16,
    11: np.float64,
    12: np.uint32,
    13: np.uint64,
}


def _concrete_shape(value_info, dim_values: Dict[str, int]) -> List[int]:
    shape = []
    for dim in value_info.type.tensor_type.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value > 0:
            shape.append(dim.dim_value)
        else:
            shape.append(int(dim_values.get(dim.dim_param, DEFAULT_DYNAMIC_DIM)))
    return shape


def generate_inputs(
    model,
    kind: str,
    *,
    seed: int = 0,
    dim_values: Optional[Dict[str, int]] = None,
    shapes: Optional[Dict[str, Sequence[int]]] = None,
):
    """Feed dict for ``model``'s graph inputs (initializers excluded) of the given kind; ``shapes`` fixes the
    shape of the inputs it names (e.g. a mask whose length must equal past + sequence)."""
    dim_values = dim_values or {}
    shapes = shapes or {}
    rng = np.random.default_rng(seed)
    initializers = {init.name for init in model.graph.initializer}
    feeds = {}
    for value_info in model.graph.input:
        if value_info.name in initializers:
            continue
        elem_type = value_info.type.tensor_type.elem_type
        dtype = _ONNX_TO_NUMPY.get(elem_type)
        if dtype is None:
            raise ValueError(f"input {value_info.name!r} has an element type ({elem_type}) the check cannot generate")
        shape = list(shapes[value_info.name]) if value_info.name in shapes else _concrete_shape(value_info, dim_values)
        if np.issubdtype(dtype, np.floating):
            noise = rng.standard_normal(shape)
            if kind == "random":
                data = noise
            elif kind == "low_variance":
                # Every row nearly constant: the variance is tiny next to the mean.
                data = 3.0 + 1e-3 * noise
            elif kind == "large_mean":
                data = 1.0e3 + 10.0 * noise
            else:
                raise ValueError(f"unknown input kind {kind!r}; expected one of {INPUT_KINDS}")
            feeds[value_info.name] = data.astype(dtype)
        elif dtype == np.bool_:
            feeds[value_info.name] = rng.integers(0, 2, size=shape).astype(dtype)
        else:
            # Small non-negative integers: valid as indices into small tables and as shape values, and below
            # the row count of every table the input indexes (BERT's token_type_ids: 2 rows, RoBERTa's: 1).
            high = min([4] + _gathered_rows(model, value_info.name))
            feeds[value_info.name] = rng.integers(0, high, size=shape).astype(dtype)
    return feeds


def _gathered_rows(model, name: str) -> List[int]:
    """Row counts of the initializer tables that ``Gather`` nodes index with graph input ``name``."""
    dims = {init.name: list(init.dims) for init in model.graph.initializer}
    rows = []
    for node in model.graph.node:
        if node.op_type == "Gather" and len(node.input) > 1 and node.input[1] == name and node.input[0] in dims:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
            table = dims[node.input[0]]
            if table and -len(table) <= axis < len(table):
                rows.append(max(1, int(table[axis])))
    return rows


def _session(model, custom_op_library=None):
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    if custom_op_library:
        options.register_custom_ops_library(str(custom_op_library))
    if isinstance(model, (str, os.PathLike)):
        return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"]), onnx.load(
            str(model), load_external_data=False
        )
    try:
        data = model.SerializeToString()
    except ValueError:  # > 2 GB: onnxruntime must read it from disk
        tmp = tempfile.mkdtemp(prefix="pgx-check-")
        path = os.path.join(tmp, "model.onnx")
        onnx.save(model, path, save_as_external_data=True, location="model.onnx.data")
        return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"]), model
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"]), model


def compare_models(
    reference,
    candidate,
    *,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    seed: int = 0,
    input_kinds: Sequence[str] = INPUT_KINDS,
    dim_values: Optional[Dict[str, int]] = None,
    custom_op_library=None,
) -> NumericReport:
    """Run ``reference`` and ``candidate`` (ModelProto or path) on the same generated inputs and compare
    every output of the reference by name: |a - b| <= atol + rtol * |a| elementwise, NaN only where the
    reference has NaN."""
    ref_sess, ref_model = _session(reference)
    cand_sess, _ = _session(candidate, custom_op_library)
    output_names = [out.name for out in ref_sess.get_outputs()]
    report = NumericReport(atol=atol, rtol=rtol)
    for index, kind in enumerate(input_kinds):
        feeds = generate_inputs(ref_model, kind, seed=seed + index, dim_values=dim_values)
        ref_outs = ref_sess.run(output_names, feeds)
        cand_outs = cand_sess.run(output_names, feeds)
        for name, expected, actual in zip(output_names, ref_outs, cand_outs):
            report.diffs.append(_diff(kind, name, np.asarray(expected), np.asarray(actual), atol, rtol))
    return report


def _diff(kind, name, expected, actual, atol, rtol) -> OutputDiff:
    if expected.shape != actual.shape:
        return OutputDiff(kind, name, float("inf"), float("inf"), ok=False, shape_ok=False)
    if expected.size == 0:
        return OutputDiff(kind, name, 0.0, 0.0, ok=True)
    exp = expected.astype(np.float64)
    act = actual.astype(np.float64)
    exp_nan, act_nan = np.isnan(exp), np.isnan(act)
    nan_mismatch = bool(np.any(exp_nan != act_nan))
    both = ~(exp_nan | act_nan)
    with np.errstate(invalid="ignore", over="ignore"):
        abs_err = np.where(both, np.abs(exp - act), 0.0)
        abs_err = np.where(both & (exp == act), 0.0, abs_err)  # equal infinities
        rel_err = abs_err / np.maximum(np.abs(exp), max(atol, 1e-30))
    max_abs = float(np.max(abs_err))
    max_rel = float(np.max(rel_err))
    ok = not nan_mismatch and bool(np.all(abs_err <= atol + rtol * np.abs(np.where(both, exp, 0.0))))
    return OutputDiff(kind, name, max_abs, max_rel, ok=ok, nan_mismatch=nan_mismatch)


# ----------------------------------------------------------------------------------------------------------
# Comparing against a higher-precision reference

_FLOAT16_TYPES = (10, 16)  # FLOAT16, BFLOAT16
_FLOAT, _DOUBLE = 1, 11


def model_precision(model) -> str:
    """"bf16", "fp16" or "fp32": the narrowest floating type among the graph's inputs, outputs and initializers."""
    types = {vi.type.tensor_type.elem_type for vi in list(model.graph.input) + list(model.graph.output)}
    types |= {init.data_type for init in model.graph.initializer}
    if 16 in types:
        return "bf16"
    if 10 in types:
        return "fp16"
    return "fp32"


def promote_floats(model, target: int, keep_ops=()):
    """A copy of ``model`` computing in ``target`` (TensorProto.FLOAT or DOUBLE) wherever it computed in a
    narrower float: initializers, constants, declared types and Cast targets, in every subgraph.

    Top-level nodes of the op types in ``keep_ops`` (those onnxruntime has no kernel of ``target`` for) run in
    float32 between Casts.
    """
    import onnx
    from onnx import numpy_helper


    sources = set(_FLOAT16_TYPES) | ({_FLOAT} if target == _DOUBLE else set())
    np_target = np.float64 if target == _DOUBLE else np.float32
    promoted = onnx.ModelProto()
    promoted.CopyFrom(model)

    def tensor(t):
        if t.data_type in sources:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np_target), t.name))

    def value_type(tp):
        if tp.HasField("tensor_type") and tp.tensor_type.elem_type in sources:
            tp.tensor_type.elem_type = target
        elif tp.HasField("sequence_type"):
            value_type(tp.sequence_type.elem_type)
        elif tp.HasField("optional_type"):
            value_type(tp.optional_type.elem_type)

    def graph(g):
        for t in g.initializer:
            tensor(t)
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            value_type(vi.type)
        for node in g.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    tensor(attr.t)
                elif attr.type == onnx.AttributeProto.TENSORS:
                    for t in attr.tensors:
                        tensor(t)
                elif attr.type == onnx.AttributeProto.GRAPH:
                    graph(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    for sub in attr.graphs:
                        graph(sub)
                elif attr.type == onnx.AttributeProto.INT and attr.name in ("to", "dtype") and attr.i in sources:
                    attr.i = target

    graph(promoted.graph)
    # After the promotion, which would otherwise widen these Casts' float32 too.
    return _cast_around(promoted, set(keep_ops), target) if keep_ops else promoted


def _cast_around(model, ops, target):
    """``model`` with each top-level node of ``ops`` taking float32 inputs and giving ``target`` outputs (both
    through Cast nodes), decided on the types ONNX shape inference finds."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    g = inferred.graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(g.value_info) + list(g.input) + list(g.output)}
    types.update({init.name: init.data_type for init in g.initializer})
    floats = set(_FLOAT16_TYPES) | {_FLOAT, _DOUBLE}
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    nodes = []
    for index, node in enumerate(copy.graph.node):
        if node.op_type not in ops:
            nodes.append(node)
            continue
        after = []
        for i, name in enumerate(node.input):
            if name and types.get(name) in floats:
                cast = f"{name}__pgx_f32_{index}"
                nodes.append(onnx.helper.make_node("Cast", [name], [cast], to=_FLOAT))
                node.input[i] = cast
        for i, name in enumerate(node.output):
            if name and types.get(name) in floats:
                narrow = f"{name}__pgx_f32_{index}"
                after.append(onnx.helper.make_node("Cast", [narrow], [name], to=target))
                node.output[i] = narrow
        nodes.append(node)
        nodes.extend(after)
    del copy.graph.node[:]
    copy.graph.node.extend(nodes)
    return copy


@dataclass
class ReferenceDiff:
    inputs: str
    output: str
    candidate_err: float  # max |candidate - reference|
    original_err: float  # max |original - reference|
    ok: bool
    shape_ok: bool = True

    def to_dict(self):
        return dict(self.__dict__)


@dataclass
class ReferenceReport:
    reference: str  # what the reference is, e.g. "the original in float64"
    atol: float
    rtol: float
    candidate_name: str = "candidate"
    diffs: List[ReferenceDiff] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.diffs) and all(diff.ok for diff in self.diffs)

    def summary(self) -> str:
        if not self.diffs:
            return "no outputs were compared"
        worst = max(self.diffs, key=lambda d: (not d.ok, d.candidate_err - d.original_err))
        verdict = "match" if self.ok else "DIFFER"
        return (
            f"outputs {verdict} (reference: {self.reference}; atol={self.atol:g}, rtol={self.rtol:g} on top of the "
            f"original's own error; {len(self.diffs)} output/input pairs; worst: {worst.output} on {worst.inputs} "
            f"inputs, max abs err {self.candidate_name} {worst.candidate_err:.3g} vs original {worst.original_err:.3g})"
        )


def compare_with_reference(reference, original, candidate, feeds_list, *, atol, rtol, reference_name,
                           candidate_name="candidate") -> ReferenceReport:
    """Run the three models (ModelProto) on each (label, feeds) and accept ``candidate`` where, elementwise,
    |candidate - ref| <= atol + rtol * |ref| + |original - ref|: it may be off only as far as the original is,
    plus the tolerance. Feeds are cast to each model's declared input types."""
    sessions = [_session(m)[0] for m in (reference, original, candidate)]
    output_names = [out.name for out in sessions[1].get_outputs()]
    report = ReferenceReport(reference_name, atol, rtol, candidate_name)
    for label, feeds in feeds_list:
        ref, orig, cand = (
            session.run(output_names, _cast_feeds(session, feeds)) for session in sessions
        )
        for name, r, o, c in zip(output_names, ref, orig, cand):
            report.diffs.append(_reference_diff(label, name, np.asarray(r), np.asarray(o), np.asarray(c), atol, rtol))
    return report


_ORT_TO_NUMPY = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16}


def _cast_feeds(session, feeds):
    cast = {}
    for meta in session.get_inputs():
        if meta.name not in feeds:
            continue
        value = np.asarray(feeds[meta.name])
        dtype = _ORT_TO_NUMPY.get(meta.type)
        cast[meta.name] = value.astype(dtype) if dtype is not None and value.dtype != dtype else value
    return cast


def _reference_diff(label, name, ref, orig, cand, atol, rtol) -> ReferenceDiff:
    if not (ref.shape == orig.shape == cand.shape):
        return ReferenceDiff(label, name, float("inf"), float("inf"), ok=False, shape_ok=False)
    if ref.size == 0:
        return ReferenceDiff(label, name, 0.0, 0.0, ok=True)
    ref, orig, cand = (a.astype(np.float64) for a in (ref, orig, cand))
    with np.errstate(invalid="ignore", over="ignore"):
        cand_err = _abs_err(cand, ref)
        orig_err = _abs_err(orig, ref)
        allowed = atol + rtol * np.abs(np.where(np.isfinite(ref), ref, 0.0)) + orig_err
    ok = bool(np.all(cand_err <= allowed))
    return ReferenceDiff(label, name, float(np.max(cand_err)), float(np.max(orig_err)), ok=ok)


def _abs_err(actual, expected):
    """|actual - expected| with NaN where only one side is NaN counted as infinite, matching NaNs and equal
    infinities as 0."""
    exp_nan, act_nan = np.isnan(expected), np.isnan(actual)
    err = np.abs(actual - expected)
    err = np.where(actual == expected, 0.0, err)
    err = np.where(exp_nan & act_nan, 0.0, err)
    return np.where(exp_nan != act_nan, np.inf, err)

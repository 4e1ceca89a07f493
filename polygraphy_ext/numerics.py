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


def generate_inputs(model, kind: str, *, seed: int = 0, dim_values: Optional[Dict[str, int]] = None):
    """Feed dict for ``model``'s graph inputs (initializers excluded) of the given kind."""
    dim_values = dim_values or {}
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
        shape = _concrete_shape(value_info, dim_values)
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

"""Is a candidate's output close enough to the FP32 reference? Polygraphy's elementwise rule
|candidate - reference| <= atol + rtol * |reference|, and no inf/NaN where the reference is finite."""

from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np


@dataclass
class OutputError:
    output: str
    max_abs_err: float
    max_rel_err: float
    nonfinite: int  # elements that are inf/NaN in the candidate but finite in the reference
    ok: bool

    def describe(self) -> str:
        text = f"output '{self.output}': max abs err {self.max_abs_err:.3g}, max rel err {self.max_rel_err:.3g}"
        if self.nonfinite:
            text += f", {self.nonfinite} inf/NaN value(s) where FP32 is finite"
        return text


@dataclass
class Verdict:
    ok: bool
    errors: List[OutputError]  # the worst per output over all batches

    @property
    def worst(self) -> Optional[OutputError]:
        return max(self.errors, key=lambda e: (not e.ok, e.nonfinite > 0, e.max_abs_err), default=None)


def output_error(name: str, reference: np.ndarray, candidate: np.ndarray, atol: float, rtol: float) -> OutputError:
    ref = np.asarray(reference)
    cand = np.asarray(candidate)
    if not (np.issubdtype(ref.dtype, np.floating) or np.issubdtype(cand.dtype, np.floating)):
        equal = ref.shape == cand.shape and bool(np.array_equal(ref, cand))
        return OutputError(name, 0.0 if equal else float("inf"), 0.0 if equal else float("inf"), 0, equal)
    if ref.shape != cand.shape:
        return OutputError(name, float("inf"), float("inf"), 0, False)
    ref = ref.astype(np.float64)
    cand = cand.astype(np.float64)
    ref_finite = np.isfinite(ref)
    nonfinite = int(np.count_nonzero(ref_finite & ~np.isfinite(cand)))
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(ref_finite, np.abs(cand - ref), np.where((cand == ref) | (np.isnan(cand) & np.isnan(ref)), 0.0, np.inf))
        diff = np.nan_to_num(diff, nan=np.inf)
        rel = diff / np.maximum(np.abs(np.where(ref_finite, ref, 1.0)), 1e-30)
        ok = nonfinite == 0 and bool(np.all(diff <= atol + rtol * np.abs(np.where(ref_finite, ref, 0.0))))
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = float(rel.max()) if rel.size else 0.0
    return OutputError(name, max_abs, max_rel, nonfinite, ok)


def judge(references: List[Dict[str, np.ndarray]], candidates: List[Dict[str, np.ndarray]], atol, rtol) -> Verdict:
    worst: Dict[str, OutputError] = {}
    for reference, candidate in zip(references, candidates):
        for name, expected in reference.items():
            err = output_error(name, expected, candidate[name], atol, rtol)
            prev = worst.get(name)
            if prev is None or (not err.ok, err.nonfinite, err.max_abs_err) > (not prev.ok, prev.nonfinite, prev.max_abs_err):
                worst[name] = err
    errors = list(worst.values())
    return Verdict(all(e.ok for e in errors), errors)

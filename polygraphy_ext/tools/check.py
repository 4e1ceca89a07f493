"""``--check`` of every pass subtool: does the rewritten model compute what the original does?

Both models run in onnxruntime on CPU; polygraphy-ext's plugin nodes run through the package's CPU reference
(``plugins/ort_reference.py``, as ``polygraphy run --onnxrt`` does). Both are compared against a reference of
higher precision -- the original run in float64 (float32 where float64 kernels are missing), or the original
itself when neither runs -- and the rewritten model passes where it is off by no more than the original is,
plus the tolerance (whose defaults follow the models' narrowest float type).
"""

import re
from typing import Dict, List, Optional, Sequence, Tuple

from polygraphy.logger import G_LOGGER

from polygraphy_ext.tools.common import one_line, user_error

# (atol, rtol) of 16-bit models: their outputs carry ~1e-3 (fp16) / ~8e-3 (bf16) relative rounding each.
PRECISION_TOLERANCES = {"fp16": (1e-2, 1e-2), "bf16": (5e-2, 5e-2)}
_NARROWNESS = ("fp32", "fp16", "bf16")


def tolerances(precision: str, fp32_default: Tuple[float, float], atol: Optional[float], rtol: Optional[float]):
    default_atol, default_rtol = PRECISION_TOLERANCES.get(precision, fp32_default)
    return (default_atol if atol is None else atol), (default_rtol if rtol is None else rtol)


def check_rewrite(
    original,
    rewritten,
    feeds_list: Sequence[Tuple[str, Dict]],
    *,
    atol: Optional[float],
    rtol: Optional[float],
    fp32_default: Tuple[float, float],
    noun: str = "rewritten",
):
    """Fail (one line, nothing written) unless ``rewritten`` is as accurate as ``original`` within the tolerance.

    Both are ModelProtos with every weight in memory. ``atol``/``rtol`` None: the default for the narrower
    precision of the two (``fp32_default`` for float32 models).
    """
    from polygraphy_ext.numerics import compare_with_reference, model_precision

    original = _runnable(original)
    rewritten = _runnable(rewritten)
    precision = max(model_precision(original), model_precision(rewritten), key=_NARROWNESS.index)
    atol, rtol = tolerances(precision, fp32_default, atol, rtol)

    report = None
    failures: List[str] = []
    for target, label in ((11, "float64"), (1, "float32")):
        if target == 1 and precision == "fp32":
            continue  # float32 "promoted" to float32 is the original itself, tried last
        report = _against_promoted(original, rewritten, feeds_list, target, label, atol, rtol, noun, failures)
        if report is not None:
            break
    if report is None:
        try:
            report = compare_with_reference(
                original, original, rewritten, feeds_list, atol=atol, rtol=rtol,
                reference_name=f"the original itself ({precision}; no higher precision runs: {failures[0]})",
                candidate_name=noun,
            )
        except ImportError as err:
            user_error(f"--check needs onnxruntime ({one_line(err)}): pip install onnxruntime")
        except Exception as err:
            user_error(f"--check could not run the model in onnxruntime: {one_line(err)}")
    if not report.ok:
        user_error(f"--check failed, nothing written: the {noun} model differs from the original: {report.summary()}")
    G_LOGGER.info(f"--check: {report.summary()}")
    return report


# onnxruntime names the op it has no kernel for: "Could not find an implementation for Erf(13) node with name ..."
_MISSING_KERNEL = re.compile(r"Could not find an implementation for (\w+)\(")
_MAX_KEPT_OPS = 16


def _against_promoted(original, rewritten, feeds_list, target, label, atol, rtol, noun, failures):
    """The comparison against ``original`` promoted to ``target``, ops without a kernel of that type kept in
    float32; None (the reason appended to ``failures``) when it cannot run."""
    from polygraphy_ext.numerics import compare_with_reference, promote_floats

    kept = []
    while True:
        name = f"the original in {label}" + (f" ({', '.join(kept)} in float32)" if kept else "")
        try:
            reference = promote_floats(original, target, keep_ops=kept)
            return compare_with_reference(
                reference, original, rewritten, feeds_list, atol=atol, rtol=rtol, reference_name=name,
                candidate_name=noun,
            )
        except ImportError as err:
            user_error(f"--check needs onnxruntime ({one_line(err)}): pip install onnxruntime")
        except Exception as err:
            missing = _MISSING_KERNEL.search(str(err))
            if missing and missing.group(1) not in kept and len(kept) < _MAX_KEPT_OPS:
                kept.append(missing.group(1))
                continue
            failures.append(f"{label}: {one_line(err)}")
            G_LOGGER.verbose(f"--check: reference {name} could not run: {one_line(err)}")
            return None


def _runnable(model):
    """``model`` with polygraphy-ext's plugin nodes lowered to onnxruntime ops (the package's CPU reference)."""
    from polygraphy_ext.plugins.ort_reference import lowered_for_onnxruntime

    return lowered_for_onnxruntime(model, "--check: running plugin nodes")


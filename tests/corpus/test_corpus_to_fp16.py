"""to-fp16 on every real export of the corpus: what it converts, that it never writes inf/NaN, that the result
meets the tolerance on the data it measured and stays close on other data, and that TensorRT-RTX builds it."""

import sys
from pathlib import Path

import onnx
import pytest

import corpus

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "passes" / "to_fp16"))
from feeds import make_feeds  # noqa: E402
from tolerance_view import judge_outputs  # noqa: E402

from polygraphy_ext.passes.precision import PrecisionError, to_low_precision  # noqa: E402
from polygraphy_ext.passes.precision.measure import ort_session  # noqa: E402
from polygraphy_ext.passes.precision.storage_rounding import storage_rounded  # noqa: E402

FP32 = corpus.entries(dtype="float32")
# Each model is built with TensorRT once per type, from one exporter each (a build takes seconds).
BUILT = [(e, "fp16") for e in FP32 if e.exporter == "dynamo"] + [(e, "bf16") for e in FP32 if e.opset == 14]
ATOL = RTOL = 1e-2


def _convert(entry, dtype="fp16"):
    model = onnx.load(str(entry.path))
    shapes = entry.record.get("export_shapes") or {}
    calib = make_feeds(model, seed=0, shapes=shapes)
    held_out = make_feeds(model, seed=1, shapes=shapes)
    tolerance = {"atol": ATOL, "rtol": RTOL} if dtype == "fp16" else {}  # bf16: its own, looser defaults
    converted, report = to_low_precision(model, [calib], dtype=dtype, **tolerance)
    return model, converted, report, calib, held_out


@pytest.mark.parametrize("entry", FP32, ids=corpus.ids(FP32))
def test_converts_real_exports(entry):
    model, converted, report, calib, held_out = _convert(entry)
    onnx.checker.check_model(converted, full_check=True)
    # Almost all the arithmetic leaves FP32 (these tiny random-weight models need no GEMM in FP32).
    assert report.low_gemm_share is not None and report.low_gemm_share >= 0.9, report.summary()
    calib_verdict, held_verdict = judge_outputs(
        ort_session(model), ort_session(storage_rounded(converted)), [calib, held_out], ATOL, RTOL
    )
    assert calib_verdict["ok"], report.summary()
    assert held_verdict["nonfinite"] == 0 and calib_verdict["nonfinite"] == 0
    # Other data than the calibration batch: the same order of error, not a blow-up.
    assert held_verdict["max_abs_err"] < 10 * max(ATOL, calib_verdict["max_abs_err"]), held_verdict


@pytest.mark.trt
@pytest.mark.parametrize("entry, dtype", BUILT, ids=[f"{e.name}-{dtype}" for e, dtype in BUILT])
def test_converted_exports_build_with_tensorrt_rtx(build_engine, entry, dtype):
    _, converted, _, _, _ = _convert(entry, dtype)
    assert len(build_engine(converted.SerializeToString())) > 1000


def test_fp16_exports_are_refused_in_one_line():
    fp16 = [e for e in corpus.entries(dtype="float16") if e.model == "bert"]
    assert fp16
    for entry in fp16:
        model = onnx.load(str(entry.path))
        with pytest.raises(PrecisionError, match="already in fp16"):
            to_low_precision(model, [make_feeds(model, seed=0, shapes=entry.record.get("export_shapes"))])

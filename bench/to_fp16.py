"""to-fp16 side by side with the other ways to get an FP16 ONNX model, in one run, on the same inputs.

Per model: `polygraphy convert --fp-to-fp16` (onnxconverter-common's convert_float_to_float16 with
keep_io_types=True, which is what that flag runs), onnxconverter-common's auto_convert_mixed_precision at the
same atol/rtol (as shipped, and with its attempts judged with 16-bit storage), ModelOpt AutoCast when
--autocast-python names an environment that has it, and polygraphy-ext's to_low_precision. For each: share of
MatMul/Gemm/Conv FLOPs in FP16, Casts added, max abs error and inf/NaN count vs FP32 on the calibration batch and
on a held-out batch (every output run with its 16-bit tensors rounded, as an engine stores them), whether the
tolerance is met, and the median wall time over --repeats runs. Figures: docs/benchmarks.md.

    pip install onnxconverter-common   # bench only; not a dependency of the package
    python bench/to_fp16.py --repeats 3 --out bench/results/to_fp16.json    # synthetic models, then tests/corpus
    python bench/to_fp16.py --models a.onnx b.onnx --atol 1e-2 --rtol 1e-2
    python bench/to_fp16.py --autocast-python /path/to/modelopt-venv/bin/python --only "ModelOpt AutoCast"
"""

import argparse
import contextlib
import copy
import io
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "passes" / "to_fp16"))

from feeds import export_shapes, make_feeds  # noqa: E402  (tests/passes/to_fp16/feeds.py)

GEMM_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose")


def _session(model):
    from polygraphy_ext.passes.precision.measure import ort_session

    return ort_session(model)


def _gemm_flops(model, shapes):
    inits = {i.name: tuple(i.dims) for i in model.graph.initializer}
    flops = {}
    for node in model.graph.node:
        if node.op_type not in GEMM_OPS or not node.output:
            continue
        out = shapes.get(node.output[0])
        a = shapes.get(node.input[0], inits.get(node.input[0]))
        w = shapes.get(node.input[1], inits.get(node.input[1])) if len(node.input) > 1 else None
        if out is None or a is None:
            continue
        size = int(np.prod(out))
        if node.op_type in ("MatMul", "Gemm"):
            flops[node.name] = 2 * size * int(a[-1])
        elif w is not None:
            flops[node.name] = 2 * size * int(np.prod(w[1:]))
    return flops


def _tensor_shapes(model, feeds):
    from polygraphy_ext.passes.precision.measure import AllTensorsSession

    session = AllTensorsSession(model)
    shapes = {name: value.shape for name, value in feeds.items()}
    for names in session.chunks(session.intermediates):
        for name, value in session.run(names, feeds).items():
            shapes[name] = value.shape
    return shapes


def _low_gemm_share(converted, flops):
    """Share of the FP32 model's GEMM FLOPs whose node reads a 16-bit first input in ``converted``."""
    total = sum(flops.values())
    if not total:
        return None
    inferred = onnx.shape_inference.infer_shapes(converted)
    types = {v.name: v.type.tensor_type.elem_type for v in list(inferred.graph.value_info) + list(inferred.graph.input)}
    types.update({i.name: i.data_type for i in inferred.graph.initializer})
    low = {onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
    done = sum(flops.get(n.name, 0) for n in converted.graph.node if n.name in flops and types.get(n.input[0]) in low)
    return done / total


def _errors(reference_model, converted, feeds_list, atol, rtol):
    """Every tool's output judged the same way: each 16-bit tensor rounded as an engine stores it
    (onnxruntime alone would compute runs of FP16 ops in FP32 and hide their overflows)."""
    from tolerance_view import judge_outputs

    from polygraphy_ext.passes.precision.storage_rounding import storage_rounded

    return judge_outputs(_session(reference_model), _session(storage_rounded(converted)), feeds_list, atol, rtol)


@contextlib.contextmanager
def _amp_judged_with_storage_rounding():
    """auto_mixed_precision's search, with each attempt run as an engine stores 16-bit tensors: as shipped, it
    runs attempts in onnxruntime on CPU, which computes runs of FP16 ops in FP32 and accepts conversions that
    overflow (see docs/to-fp16.md). This makes its search as demanding as ours; its algorithm is unchanged."""
    from onnxconverter_common import auto_mixed_precision

    from polygraphy_ext.passes.precision.storage_rounding import storage_rounded

    shipped = auto_mixed_precision.get_tensor_values_using_ort

    def rounded(model, input_feed, output_names=None, sess_options=None):
        if output_names is None:
            return shipped(storage_rounded(model), input_feed, None, sess_options)
        return shipped(model, input_feed, output_names, sess_options)

    auto_mixed_precision.get_tensor_values_using_ort = rounded
    try:
        yield
    finally:
        auto_mixed_precision.get_tensor_values_using_ort = shipped


def _amp_rounded(model, feeds, atol, rtol):
    from onnxconverter_common import auto_mixed_precision

    with _amp_judged_with_storage_rounding():
        return auto_mixed_precision.auto_convert_mixed_precision(model, feeds, rtol=rtol, atol=atol, keep_io_types=True)


class _OutOfTime(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds):
    """Raise _OutOfTime in this (main) thread after ``seconds``: auto_mixed_precision's bisection can take hours."""
    import signal

    def expire(signum, frame):
        raise _OutOfTime()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


_AUTOCAST_SCRIPT = """
import json, sys, time, warnings
import numpy as np
warnings.filterwarnings("ignore")
from modelopt.onnx.autocast import convert_to_mixed_precision
import onnx
model_path, calib_path, out_path, repeats = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
times = []
for _ in range(repeats):
    begin = time.perf_counter()
    converted = convert_to_mixed_precision(model_path, low_precision_type="fp16", keep_io_types=True,
                                           calibration_data=calib_path)
    times.append(time.perf_counter() - begin)
onnx.save(converted, out_path)
print(json.dumps(times))
"""


def _autocast(python, path, calib, repeats, limit_s):
    """ModelOpt AutoCast (its defaults: data_max=512, init_max=65504) in its own environment, on the calibration
    batch; returns the converted model and its conversion times, measured in that process."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        calib_path, out_path = Path(tmp) / "calib.npz", Path(tmp) / "out.onnx"
        np.savez(calib_path, **calib)
        proc = subprocess.run(
            [python, "-c", _AUTOCAST_SCRIPT, str(path), str(calib_path), str(out_path), str(repeats)],
            capture_output=True, text=True, timeout=limit_s * repeats + 60,
        )
        if proc.returncode != 0:
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            raise RuntimeError(lines[-1] if lines else f"exit code {proc.returncode}")
        times = json.loads(proc.stdout.strip().splitlines()[-1])
        return onnx.load(str(out_path)), times


def _timed(fn, repeats, limit_s):
    times, result = [], None
    for _ in range(repeats):
        begin = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), _time_limit(limit_s):  # amp prints every attempt
            result = fn()
        times.append(time.perf_counter() - begin)
    return result, statistics.median(times), times


def run_model(path, atol, rtol, repeats, limit_s, autocast_python=None, only=None):
    from onnxconverter_common import auto_mixed_precision, float16

    from polygraphy_ext.passes.precision import to_low_precision

    model = onnx.load(str(path))
    shapes = export_shapes(path)
    calib = make_feeds(model, seed=0, shapes=shapes)
    held_out = make_feeds(model, seed=1, shapes=shapes)
    try:
        flops = _gemm_flops(model, _tensor_shapes(model, calib))
    except Exception as err:
        return [{"model": Path(path).name, "tool": "-", "failed": f"skipped: the FP32 model does not run on generated inputs ({str(err).splitlines()[0][:120]})"}]
    casts0 = sum(1 for n in model.graph.node if n.op_type == "Cast")
    # onnxconverter-common converts the model it is given in place: each run gets its own copy (the copy is
    # part of the timed call; it costs milliseconds on these models).
    tools = {
        "polygraphy --fp-to-fp16": lambda: float16.convert_float_to_float16(
            copy.deepcopy(model), keep_io_types=True, disable_shape_infer=True
        ),
        "auto_mixed_precision": lambda: auto_mixed_precision.auto_convert_mixed_precision(
            copy.deepcopy(model), calib, rtol=rtol, atol=atol, keep_io_types=True
        ),
        "amp, 16-bit storage": lambda: _amp_rounded(copy.deepcopy(model), calib, atol, rtol),
        "to-fp16 (ours)": lambda: to_low_precision(model, [calib], atol=atol, rtol=rtol)[0],
    }
    if autocast_python:
        tools["ModelOpt AutoCast"] = None
    if only:
        tools = {name: fn for name, fn in tools.items() if name in only}
    rows = []
    for tool, fn in tools.items():
        row = {"model": Path(path).name, "tool": tool}
        started = time.perf_counter()
        try:
            if fn is None:
                converted, times = _autocast(autocast_python, path, calib, repeats, limit_s)
                median_s = statistics.median(times)
            else:
                converted, median_s, times = _timed(fn, repeats, limit_s)
        except _OutOfTime:
            row["failed"] = f"out of time: not done after {limit_s:g} s"
            row["seconds_median"] = row["out_of_time_after_s"] = limit_s
            rows.append(row)
            continue
        except Exception as err:  # a tool that fails on a model is a result, not a crash of the bench
            row["seconds_to_failure"] = time.perf_counter() - started
            row["failed"] = f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
            rows.append(row)
            continue
        try:
            _session(converted)
            row["loads_in_onnxruntime"] = True
        except Exception as err:  # e.g. value_info left with the old types: TensorRT's parser may still take it
            row["loads_in_onnxruntime"] = False
            row["onnxruntime_error"] = str(err).splitlines()[0][:200]
        try:
            errors = _errors(model, converted, [calib, held_out], atol, rtol)
        except Exception as err:
            row["failed"] = f"its output does not run, even retyped: {str(err).splitlines()[0][:160]}"
            row["seconds_median"] = median_s
            rows.append(row)
            continue
        row.update(
            {
                "seconds_median": median_s,
                "seconds_all": times,
                "gemm_flops_fp16_share": _low_gemm_share(converted, flops),
                "casts_added": sum(1 for n in converted.graph.node if n.op_type == "Cast") - casts0,
                "max_abs_err_calib": errors[0]["max_abs_err"],
                "max_abs_err_held_out": errors[1]["max_abs_err"],
                "nonfinite": errors[0]["nonfinite"] + errors[1]["nonfinite"],
                "meets_tolerance_calib": errors[0]["ok"],
                "meets_tolerance_held_out": errors[1]["ok"],
            }
        )
        rows.append(row)
    return rows


def _fmt(row):
    if "failed" in row:
        return f"{row['model']:<30} {row['tool']:<24} FAILED: {row['failed']}"
    share = row["gemm_flops_fp16_share"]
    return (
        f"{row['model']:<30} {row['tool']:<24} {('n/a' if share is None else f'{share:6.1%}'):>7} "
        f"{row['casts_added']:>6} {row['max_abs_err_calib']:>10.3g} {row['max_abs_err_held_out']:>10.3g} "
        f"{row['nonfinite']:>8} {'yes' if row['meets_tolerance_held_out'] else 'NO':>5} {row['seconds_median']:>9.3f}"
        + ("" if row["loads_in_onnxruntime"] else "  (fails onnxruntime's type check as written)")
    )


def _synthetic_models():
    """The test models where FP16 goes wrong (tests/passes/to_fp16/models.py), saved for this run."""
    import models as synthetic

    folder = REPO / "bench" / "results" / "to_fp16_models"
    folder.mkdir(parents=True, exist_ok=True)
    built = {
        "overflow_layernorm": synthetic.overflow_layernorm_model(),
        "cancellation": synthetic.cancellation_model(),
        "masked_attention": synthetic.masked_attention_model(),
        "overflow_layernorm_x8": synthetic.overflow_layernorm_stack_model(blocks=8),
        "offset_layernorm_x2": synthetic.transformer_stack_model(layers=2),
        "offset_layernorm_x4": synthetic.transformer_stack_model(layers=4),
    }
    paths = []
    for name, model in built.items():
        onnx.save(model, folder / f"{name}.onnx")
        paths.append(folder / f"{name}.onnx")
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", type=Path, help="Default: the synthetic models, then the corpus")
    parser.add_argument(
        "--autocast-python",
        metavar="PYTHON",
        help="Also run ModelOpt AutoCast with this interpreter (an environment with nvidia-modelopt[onnx]; it is "
        "kept apart from the package's own)",
    )
    parser.add_argument("--only", nargs="+", metavar="TOOL", help="Run only these tools (names as in the table)")
    parser.add_argument("--synthetic-only", action="store_true", help="Only the synthetic failure models")
    parser.add_argument("--atol", type=float, default=1e-2)
    parser.add_argument("--rtol", type=float, default=1e-2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--limit", type=float, default=600.0, help="Seconds one conversion may take before it counts as out of time"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "to_fp16.json")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # onnxconverter-common warns once per clamped constant
    corpus = [] if args.synthetic_only else sorted((REPO / "tests" / "corpus" / "models").glob("*.onnx"))
    models = args.models or (_synthetic_models() + corpus)
    print(f"atol={args.atol:g} rtol={args.rtol:g} repeats={args.repeats}")
    print(
        f"{'model':<30} {'tool':<24} {'fp16 FLOPs':>7} {'casts':>6} {'err calib':>10} {'err held':>10} "
        f"{'inf/NaN':>8} {'ok':>5} {'median s':>9}"
    )
    rows = []
    for path in models:
        for row in run_model(path, args.atol, args.rtol, args.repeats, args.limit, args.autocast_python, args.only):
            print(_fmt(row), flush=True)
            rows.append(row)
    by_model = {}
    for row in rows:
        by_model.setdefault(row["model"], {})[row["tool"]] = row
    speedups = []
    for model, tools in by_model.items():
        ours = tools.get("to-fp16 (ours)")
        for name in ("auto_mixed_precision", "amp, 16-bit storage", "ModelOpt AutoCast"):
            amp = tools.get(name)
            timed = amp and ("failed" not in amp or "out_of_time_after_s" in amp)
            if ours and "seconds_median" in ours and timed:
                ratio = amp["seconds_median"] / ours["seconds_median"]
                at_least = "out_of_time_after_s" in amp
                speedups.append({"model": model, "tool": name, "ratio": ratio, "lower_bound": at_least})
                print(f"{model}: {name} time / to-fp16 time = {'>= ' if at_least else ''}{ratio:.1f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                "atol": args.atol,
                "rtol": args.rtol,
                "repeats": args.repeats,
                "rows": rows,
                "speedup_vs_auto_mixed_precision": speedups,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""fuse-gelu against its peer, and what the pass costs.

1. Coverage, side by side with onnxruntime's transformers optimizer (``optimize_model``, model_type "bert",
   opt_level 0: its Gelu/FastGelu/BiasGelu fusions), on
   - the real-export corpus (tests/corpus): GELUs fused out of those the source model calls;
   - every spelling of tests/passes/fuse_gelu/gelu_chains.py, both operand orders, fp32 and Cast-wrapped fp16;
   - near misses (constants off by more than rounding, x^2 for the cube): a fusion there is a wrong model.
2. Time: `polygraphy surgeon fuse-gelu` vs `polygraphy surgeon sanitize` on the same models (subprocesses,
   alternating, medians of --repeats), plus the pass alone on a generated model of --chains GELUs.

    python bench/fuse_gelu.py --out bench/results/fuse_gelu.json
"""

import argparse
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests" / "corpus"), str(REPO / "tests" / "passes" / "fuse_gelu")]

import onnx  # noqa: E402
import onnx_graphsurgeon as gs  # noqa: E402

from polygraphy_ext.passes import fuse_gelu  # noqa: E402

ORT_GELU_OPS = {"Gelu", "FastGelu", "BiasGelu", "BiasFastGelu"}


def ort_fused(model) -> int:
    """GELU contrib ops onnxruntime's optimizer writes for ``model`` (-1 when it crashes)."""
    from onnxruntime.transformers.optimizer import optimize_model

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.onnx")
        onnx.save(model, path)
        try:
            optimized = optimize_model(path, model_type="bert", num_heads=0, hidden_size=0, opt_level=0, use_gpu=False)
        except Exception:
            return -1
        return sum(node.op_type in ORT_GELU_OPS for node in optimized.model.graph.node)


def ours_fused(model) -> int:
    graph = gs.import_onnx(onnx.shape_inference.infer_shapes(model))
    return len(fuse_gelu(graph).fused)


def coverage():
    import corpus
    from gelu_chains import ERF_SPELLINGS, TANH_SPELLINGS, build, cast_wrapped
    from test_fuse_gelu_rejections import _erf_chain, _tanh_chain

    functional = {"whisper_encoder": 2}  # nn.functional.gelu after Whisper's convs (see the corpus test)
    rows = {"corpus": [], "spellings": [], "near_misses": []}
    for entry in corpus.entries():
        model = onnx.load(entry.path)
        want = entry.count("gelu") + functional.get(entry.model, 0)
        rows["corpus"].append({"file": entry.name, "gelus": want, "fuse_gelu": ours_fused(model), "onnxruntime": ort_fused(model)})
    for spelling in ERF_SPELLINGS + TANH_SPELLINGS:
        for swap in (False, True):
            for form, model in (("fp32", build(spelling, swap=swap)), ("fp16-cast", cast_wrapped(spelling, swap=swap))):
                rows["spellings"].append({"spelling": spelling.__name__, "swap": swap, "form": form,
                                          "fuse_gelu": ours_fused(model), "onnxruntime": ort_fused(model)})
    near = {
        "erf, sqrt(2) written 1.4143": _erf_chain(div=1.4143),
        "erf, sqrt(2) * (1 + 1e-5)": _erf_chain(div=math.sqrt(2) * (1 + 1e-5)),
        "erf, 0.7071 (4 digits)": _erf_chain(mul_instead=0.7071),
        "erf, 0.5004 for 0.5": _erf_chain(half=0.5004),
        "erf, 1.001 for 1": _erf_chain(one=1.001),
        "tanh, 0.0447 for 0.044715": _tanh_chain(cubic=0.0447),
        "tanh, 0.7978 for sqrt(2/pi)": _tanh_chain(k=0.7978),
        "tanh, 0.8 for sqrt(2/pi)": _tanh_chain(k=0.8),
        "tanh, x^2 for x^3": _tanh_chain(exponent=2.0),
    }
    for name, model in near.items():
        rows["near_misses"].append({"case": name, "fuse_gelu": ours_fused(model), "onnxruntime": ort_fused(model)})
    return rows


def _synthetic(path, chains):
    """``chains`` blocks of MatMul -> Add(bias) -> erf GELU (TorchScript's spelling), hidden 64."""
    import numpy as np
    from gelu_chains import Chain, erf_torchscript

    c = Chain(shape=("N", 64))
    rng = np.random.default_rng(0)
    t = c.x
    for i in range(chains):
        w = c.name("w")
        c.inits.append(onnx.numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32) * 0.1, w))
        t = erf_torchscript(c, c.op("Add", c.op("MatMul", t, w), c.const(0.1, shape=(64,))))
    onnx.save(c.model(t), path)


def _timed(cmd):
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout + proc.stderr)
    return elapsed


def timing(repeats, chains):
    exe = str(Path(sys.executable).parent / "polygraphy")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = os.path.join(tmp, f"gelu_x{chains}.onnx")
        _synthetic(synthetic, chains)
        models = {"bert_ts14 (corpus)": str(REPO / "tests/corpus/models/bert_ts14.onnx"), f"{chains} MatMul+GELU blocks": synthetic}
        for label, path in models.items():
            samples = {"fuse-gelu": [], "fuse-gelu --target plugin": [], "sanitize": []}
            for _ in range(repeats):  # alternating, so that load on the shared machine hits all alike
                samples["fuse-gelu"].append(_timed([exe, "surgeon", "fuse-gelu", path, "-o", os.path.join(tmp, "n.onnx")]))
                samples["fuse-gelu --target plugin"].append(
                    _timed([exe, "surgeon", "fuse-gelu", path, "-o", os.path.join(tmp, "p.onnx"), "--target", "plugin"]))
                samples["sanitize"].append(_timed([exe, "surgeon", "sanitize", path, "-o", os.path.join(tmp, "s.onnx")]))
            medians = {k: statistics.median(v) for k, v in samples.items()}
            results.append({"model": label, "samples_s": samples, "median_s": medians,
                            "ratio_fuse_gelu_over_sanitize": medians["fuse-gelu"] / medians["sanitize"]})
        # The pass alone (import -> match -> emit -> cleanup), in process: what scales with the graph.
        model = onnx.load(synthetic)
        pass_samples = []
        for _ in range(repeats):
            graph = gs.import_onnx(model)
            start = time.perf_counter()
            report = fuse_gelu(graph, target="plugin")
            pass_samples.append(time.perf_counter() - start)
        results.append({"model": f"pass only, {chains} blocks, plugin target", "fused": len(report.fused),
                        "nodes_before": len(model.graph.node), "samples_s": pass_samples,
                        "median_s": statistics.median(pass_samples)})
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chains", type=int, default=500, help="GELU blocks of the generated model")
    parser.add_argument("--out", default="bench/results/fuse_gelu.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)

    cov = coverage()
    for key, rows in cov.items():
        ours = sum(r["fuse_gelu"] for r in rows)
        ort = sum(max(r["onnxruntime"], 0) for r in rows)
        crashes = sum(r["onnxruntime"] < 0 for r in rows)
        total = sum(r.get("gelus", 1) for r in rows) if key != "near_misses" else 0
        what = "wrongly fused" if key == "near_misses" else f"fused of {total}"
        print(f"{key:12s} ({len(rows)} models): fuse-gelu {ours} {what}; onnxruntime {ort} {what}"
              + (f" ({crashes} optimizer crashes)" if crashes else ""))
    times = timing(args.repeats, args.chains)
    for row in times:
        if "ratio_fuse_gelu_over_sanitize" in row:
            m = row["median_s"]
            print(f"{row['model']}: fuse-gelu {m['fuse-gelu']:.2f} s, --target plugin {m['fuse-gelu --target plugin']:.2f} s, "
                  f"sanitize {m['sanitize']:.2f} s; ratio fuse-gelu / sanitize {row['ratio_fuse_gelu_over_sanitize']:.2f}")
        else:
            print(f"{row['model']}: {row['median_s'] * 1e3:.0f} ms for {row['nodes_before']} nodes, {row['fused']} fused")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "repeats": args.repeats,
        "coverage": cov, "timing": times,
    }, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

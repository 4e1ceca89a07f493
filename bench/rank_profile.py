"""Benchmark: parse + rank + group a 100,000-layer trtexec profile (target: under 1 s).

    python bench/rank_profile.py [--layers 100000] [--repeats 7]

Generates the profile in trtexec's own byte format (tests/profile/trtexec_format.py): repeated transformer
blocks with ONNX-path names, TensorRT 10 Myelin kernel rows, reformats and zero-time rows. Every step is timed
in the same process, side by side, `--repeats` times; the table shows medians and the ratio of each step to a
bare `json.loads` of the same file (the floor any JSON-based reader pays). Results go to
bench/results/rank_profile.json.
"""

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "profile"))

from trtexec_format import Row, profile_text  # noqa: E402

from polygraphy_ext.profile.grouping import group  # noqa: E402
from polygraphy_ext.profile.parse import load_profile  # noqa: E402
from polygraphy_ext.profile.ranking import rank  # noqa: E402

_BLOCK_OPS = [
    "attention/self/query/MatMul",
    "attention/self/key/MatMul",
    "attention/self/Softmax",
    "attention/output/dense/MatMul + {p}/attention/output/dense/Add",
    "attention/output/LayerNorm/ReduceMean",
    "PWN({p}/attention/output/LayerNorm/Sub)",
    "intermediate/dense/MatMul + {p}/intermediate/intermediate_act_fn/Mul_1",
    "output/dense/input_quantizer/QuantizeLinear",
    "output/dense/MatMul + {p}/output/dense/Add",
    "output/Transpose",
    "output/Reshape",
]
_KERNEL_ROWS = [
    "__myl_MoveMeanSubMulMeanAddSqrtDivMulMulAdd_myl{b}_{i}",
    "_gemm_mha_v2_myl{b}_{i}",
    "__myl_MulAddErfMulMul_myl{b}_{i}",
    "Reformatting CopyNode for Input Tensor 0 to /encoder/layer.{b}/output/Reshape_{i}",
    "/encoder/layer.{b}/Shape_{i}",
]


def synthetic_rows(layers: int, seed: int = 0):
    rng = random.Random(seed)
    rows = []
    per_block = len(_BLOCK_OPS) + len(_KERNEL_ROWS)
    for index in range(layers):
        block, slot = divmod(index, per_block)
        p = f"/encoder/layer.{block}"
        if slot < len(_BLOCK_OPS):
            name = f"{p}/" + _BLOCK_OPS[slot].format(p=p)
        else:
            name = _KERNEL_ROWS[slot - len(_BLOCK_OPS)].format(b=block, i=index)
        zero = name.endswith(f"Shape_{index}")
        rows.append(Row(name, 0.0 if zero else rng.lognormvariate(-4, 1.2)))
    return rows


def median_seconds(function, repeats: int):
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), samples


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--output", default=str(REPO / "bench" / "results" / "rank_profile.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "profile.json"
        path.write_text(profile_text(synthetic_rows(args.layers), count=100))
        size_mb = path.stat().st_size / 1e6
        text = path.read_text()

        def parse_rank_group():
            group(rank(load_profile(path)), "family")

        profile = load_profile(path)
        ranking = rank(profile)
        steps = {
            "json.loads (floor)": lambda: json.loads(text),
            "parse": lambda: load_profile(path),
            "rank (incl. classify)": lambda: rank(profile),
            "group family": lambda: group(ranking, "family"),
            "group prefix:2": lambda: group(ranking, "prefix:2"),
            "parse + rank + group family": parse_rank_group,
        }
        results = {}
        for label, function in steps.items():
            median, samples = median_seconds(function, args.repeats)
            results[label] = {"median_s": median, "samples_s": samples}

    floor = results["json.loads (floor)"]["median_s"]
    print(
        f"{args.layers} layers, {size_mb:.1f} MB, median of {args.repeats} repeats, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"{'step':<30} {'median s':>9} {'x json.loads':>13}")
    for label, result in results.items():
        print(f"{label:<30} {result['median_s']:>9.3f} {result['median_s'] / floor:>12.1f}x")
    total = results["parse + rank + group family"]["median_s"]
    print(f"budget: parse + rank + group under 1 s -> {'met' if total < 1.0 else 'NOT met'} ({total:.3f} s)")

    report = {
        "benchmark": "rank_profile",
        "layers": args.layers,
        "file_mb": size_mb,
        "repeats": args.repeats,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d"),
        # Other work on the machine slows every step alike; the load average says how busy it was.
        "load_average_1min": os.getloadavg()[0],
        "steps": {label: {**result, "ratio_to_json_loads": result["median_s"] / floor} for label, result in results.items()},
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()

"""Why align-dims matters, and what the pass itself costs.

1. GEMM shapes before/after alignment (torch matmul as the proxy for TensorRT's Tensor Core kernels), in
   fp16/bf16/tf32, unaligned and aligned timed interleaved in the same run; ratio = unaligned / aligned.
2. The full FFN block (Linear -> GELU -> Linear) with width 3071 vs 3072.
3. The pass's own time on generated models of growing size (should be linear in graph size).
4. ``--corpus``: every real export of tests/corpus with an odd Linear/Conv width: per width, padded at zero
   cost / with a Slice or Pad / refused (with the reason), whether ``--check`` holds, and the loader's time
   (import, pass, export: what the user pays) over Polygraphy's own ``sanitize`` (constant folding) on the same
   model, medians of repeats, side by side in one run. Prints the markdown table of docs/align-dims.md.

GPU (H100/H200):  python bench/align_dims.py --out bench/results/align_dims.json
CPU smoke check:  python bench/align_dims.py --smoke --out /tmp/align_dims_smoke.json
Corpus table:     python bench/align_dims.py --corpus --skip-torch --out /tmp/align_dims_corpus.json
"""

import argparse
import json
import platform
import statistics
import time

import numpy as np

GEMM_CASES = [
    # (label, (m, k, n) unaligned, (m, k, n) aligned)
    ("k 255 vs 256", (32, 255, 2048), (32, 256, 2048)),
    ("n 2047 vs 2048", (32, 256, 2047), (32, 256, 2048)),
    ("FFN up 3071 vs 3072", (2048, 768, 3071), (2048, 768, 3072)),
    ("FFN down 3071 vs 3072", (2048, 3071, 768), (2048, 3072, 768)),
    ("vocab 50257 vs 50264", (512, 768, 50257), (512, 768, 50264)),
]
SMOKE_GEMM_CASES = [("k 31 vs 32", (8, 31, 64), (8, 32, 64)), ("n 63 vs 64", (8, 32, 63), (8, 32, 64))]
FFN_BLOCK = {"tokens": 2048, "hidden": 768, "inner": (3071, 3072)}
SMOKE_FFN_BLOCK = {"tokens": 16, "hidden": 32, "inner": (63, 64)}


def _timer(torch, device):
    if device == "cuda":

        def run(fn, iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(iters):
                fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / iters

    else:

        def run(fn, iters):
            begin = time.perf_counter()
            for _ in range(iters):
                fn()
            return (time.perf_counter() - begin) * 1e3 / iters

    return run


def _side_by_side(torch, device, fn_a, fn_b, iters, repeats):
    """Median ms of each function over ``repeats``, alternating a/b so drift affects both alike."""
    timer = _timer(torch, device)
    for fn in (fn_a, fn_b):  # warm-up (cuBLAS heuristics, allocations)
        timer(fn, max(1, iters // 4))
    times_a, times_b = [], []
    for _ in range(repeats):
        times_a.append(timer(fn_a, iters))
        times_b.append(timer(fn_b, iters))
    return statistics.median(times_a), statistics.median(times_b)


def _dtypes(torch, device, smoke):
    if device != "cuda":
        return [("fp32", torch.float32)] if smoke else [("fp32", torch.float32), ("bf16", torch.bfloat16)]
    return [("fp16", torch.float16), ("bf16", torch.bfloat16), ("tf32", torch.float32)]


def bench_gemms(torch, device, smoke, iters, repeats):
    results = []
    for dtype_name, dtype in _dtypes(torch, device, smoke):
        torch.backends.cuda.matmul.allow_tf32 = dtype_name == "tf32"
        for label, unaligned, aligned in SMOKE_GEMM_CASES if smoke else GEMM_CASES:
            operands = []
            for m, k, n in (unaligned, aligned):
                operands.append((torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype)))
            (a0, b0), (a1, b1) = operands
            ms_unaligned, ms_aligned = _side_by_side(
                torch, device, lambda: torch.matmul(a0, b0), lambda: torch.matmul(a1, b1), iters, repeats
            )
            results.append(
                {
                    "case": label,
                    "dtype": dtype_name,
                    "unaligned_mkn": unaligned,
                    "aligned_mkn": aligned,
                    "unaligned_ms": ms_unaligned,
                    "aligned_ms": ms_aligned,
                    "ratio_unaligned_over_aligned": ms_unaligned / ms_aligned,
                }
            )
    return results


def bench_ffn_block(torch, device, smoke, iters, repeats):
    cfg = SMOKE_FFN_BLOCK if smoke else FFN_BLOCK
    results = []
    for dtype_name, dtype in _dtypes(torch, device, smoke):
        torch.backends.cuda.matmul.allow_tf32 = dtype_name == "tf32"
        blocks = []
        for inner in cfg["inner"]:
            x = torch.randn(cfg["tokens"], cfg["hidden"], device=device, dtype=dtype)
            w1 = torch.randn(cfg["hidden"], inner, device=device, dtype=dtype)
            b1 = torch.randn(inner, device=device, dtype=dtype)
            w2 = torch.randn(inner, cfg["hidden"], device=device, dtype=dtype)
            b2 = torch.randn(cfg["hidden"], device=device, dtype=dtype)
            blocks.append(lambda x=x, w1=w1, b1=b1, w2=w2, b2=b2: torch.nn.functional.gelu(x @ w1 + b1) @ w2 + b2)
        ms_unaligned, ms_aligned = _side_by_side(torch, device, blocks[0], blocks[1], iters, repeats)
        results.append(
            {
                "dtype": dtype_name,
                "tokens": cfg["tokens"],
                "hidden": cfg["hidden"],
                "inner": list(cfg["inner"]),
                "unaligned_ms": ms_unaligned,
                "aligned_ms": ms_aligned,
                "ratio_unaligned_over_aligned": ms_unaligned / ms_aligned,
            }
        )
    return results


def _ffn_stack(layers, hidden=64, inner=191):
    """``layers`` post-LN FFN blocks with an odd inner width: 7 nodes per layer, one padding per layer."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits = [], []

    def const(name, values):
        inits.append(numpy_helper.from_array(np.asarray(values, dtype=np.float32), name))
        return name

    x = "x"
    for i in range(layers):
        p = f"l{i}_"
        nodes += [
            helper.make_node("MatMul", [x, const(p + "w1", rng.standard_normal((hidden, inner)))], [p + "h"]),
            helper.make_node("Add", [p + "h", const(p + "b1", rng.standard_normal(inner))], [p + "hb"]),
            helper.make_node("Relu", [p + "hb"], [p + "a"]),
            helper.make_node("MatMul", [p + "a", const(p + "w2", rng.standard_normal((inner, hidden)))], [p + "y"]),
            helper.make_node("Add", [p + "y", const(p + "b2", rng.standard_normal(hidden))], [p + "yb"]),
            helper.make_node("Add", [p + "yb", x], [p + "r"]),
            helper.make_node(
                "LayerNormalization",
                [p + "r", const(p + "g", np.ones(hidden)), const(p + "beta", np.zeros(hidden))],
                [p + "out"],
                axis=-1,
            ),
        ]
        x = p + "out"
    graph = helper.make_graph(
        nodes,
        "ffn_stack",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "sequence", hidden])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", "sequence", hidden])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def bench_pass(smoke, repeats):
    import onnx_graphsurgeon as gs

    from polygraphy_ext.passes.dim_alignment import align_dims

    sizes = (5, 10, 20) if smoke else (50, 100, 200, 400)
    results = []
    for layers in sizes:
        model = _ffn_stack(layers)
        times = []
        for _ in range(repeats):
            graph = gs.import_onnx(model)
            start = time.perf_counter()
            report = align_dims(graph)
            times.append(time.perf_counter() - start)
            assert len(report.aligned) == layers
        median = statistics.median(times)
        results.append(
            {"layers": layers, "nodes": len(model.graph.node), "median_s": median, "us_per_node": 1e6 * median / len(model.graph.node)}
        )
    return results


def _width_outcome(width, report, inner):
    """How one odd width ended: zero cost, with a Slice/Pad, or refused (with the first reason)."""
    dims = [d for d in report.aligned if d.old_size == width]
    if dims:
        kinds = sorted({"zero cost" if d.boundary == "none" else d.boundary for d in dims})
        return f"{width}: {len(dims)}x " + "/".join(kinds)
    reasons = [item.reason for item in report.left_alone if f"{width} -> " in item.reason]
    why = reasons[0].split(";")[0] if reasons else "not a GEMM/conv width the pass sees"
    return f"{width}: refused ({why})" if inner or reasons else f"{width}: {why}"


def bench_corpus(repeats):
    import os
    import sys

    import onnx
    from polygraphy.backend.onnx import FoldConstants

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "corpus"))
    import corpus
    from test_corpus_align_dims import dim_values, inner_widths

    from polygraphy_ext.numerics import compare_models
    from polygraphy_ext.passes.dim_alignment.loader import AlignDims

    rows = []
    for entry in corpus.entries(has="odd_width"):
        model = onnx.load(str(entry.path))
        inner = inner_widths(entry)
        align_s, fold_s = [], []
        for _ in range(repeats):  # alternated, so machine noise hits both alike
            start = time.perf_counter()
            loader = AlignDims(model)
            aligned = loader()
            align_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            FoldConstants(model)()
            fold_s.append(time.perf_counter() - start)
        report = loader.report
        check = compare_models(model, aligned, dim_values=dim_values(entry)) if report.changed else None
        added = {op: sum(n.op_type == op for n in aligned.graph.node) - sum(n.op_type == op for n in model.graph.node)
                 for op in ("Slice", "Pad")}
        rows.append(
            {
                "file": entry.file,
                "odd_widths": list(entry.odd_widths),
                "inner_widths": sorted(inner),
                "outcomes": [_width_outcome(w, report, w in inner) for w in entry.odd_widths],
                "slices_added": max(0, added["Slice"]),
                "pads_added": max(0, added["Pad"]),
                "check": None if check is None else bool(check.ok),
                "align_median_s": statistics.median(align_s),
                "sanitize_median_s": statistics.median(fold_s),
            }
        )
    return rows


def print_corpus_table(rows):
    print("| model | odd widths (inner: FFN) | outcome per width | Slice/Pad added | --check | time / sanitize |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        inner = ", ".join(str(w) for w in row["inner_widths"]) or "-"
        check = {None: "unchanged", True: "exact", False: "FAILED"}[row["check"]]
        ratio = row["align_median_s"] / row["sanitize_median_s"] if row["sanitize_median_s"] else float("nan")
        print(
            f"| {row['file'][:-5]} | {', '.join(map(str, row['odd_widths']))} ({inner}) | {'; '.join(row['outcomes'])} "
            f"| {row['slices_added']}/{row['pads_added']} | {check} | {ratio:.2f}x |"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, runs on CPU in seconds")
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None, help="default: cuda if available")
    parser.add_argument("--iters", type=int, default=None, help="timed iterations per repeat (default 200; smoke 5)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats; medians are reported (default 9; smoke 3)")
    parser.add_argument("--skip-torch", action="store_true", help="only time the pass itself")
    parser.add_argument("--corpus", action="store_true", help="also run the pass on the real-export corpus (table)")
    parser.add_argument("--out", default="align_dims_bench.json", help="JSON output path")
    args = parser.parse_args()
    iters = args.iters or (5 if args.smoke else 200)
    repeats = args.repeats or (3 if args.smoke else 9)

    out = {"host": platform.node(), "smoke": args.smoke, "iters": iters, "repeats": repeats}
    if not args.skip_torch:
        import torch

        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        out["device"] = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu"
        out["torch"] = torch.__version__
        out["gemm"] = bench_gemms(torch, device, args.smoke, iters, repeats)
        out["ffn_block"] = bench_ffn_block(torch, device, args.smoke, iters, repeats)
        print(f"device: {out['device']}")
        print(f"{'case':<24}{'dtype':<6}{'unaligned ms':>14}{'aligned ms':>12}{'ratio':>8}")
        for row in out["gemm"]:
            print(f"{row['case']:<24}{row['dtype']:<6}{row['unaligned_ms']:>14.4f}{row['aligned_ms']:>12.4f}"
                  f"{row['ratio_unaligned_over_aligned']:>8.2f}")
        for row in out["ffn_block"]:
            label = f"FFN block {row['inner'][0]} vs {row['inner'][1]}"
            print(f"{label:<24}{row['dtype']:<6}{row['unaligned_ms']:>14.4f}{row['aligned_ms']:>12.4f}"
                  f"{row['ratio_unaligned_over_aligned']:>8.2f}")
    out["pass_time"] = bench_pass(args.smoke, repeats)
    print(f"{'layers':>8}{'nodes':>8}{'median s':>12}{'us/node':>10}")
    for row in out["pass_time"]:
        print(f"{row['layers']:>8}{row['nodes']:>8}{row['median_s']:>12.4f}{row['us_per_node']:>10.1f}")
    if args.corpus:
        out["corpus"] = bench_corpus(repeats)
        print_corpus_table(out["corpus"])
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

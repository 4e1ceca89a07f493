"""GPU benchmark of the trt_plugins kernels (through their TensorRT plugin enqueue) against PyTorch.

For each plugin, dtype and hidden size H in 256..16384 at a working set of 1 GiB (minimum bytes: inputs read
once, outputs written once): achieved GB/s over the GB/s of a device-to-device copy that moves the same 1 GiB
(512 MiB read, 512 MiB written) in the same run,
and the same for torch eager (and torch.compile on a subset: --compile). Small, launch-bound shapes are timed as
CUDA-graph replays and reported in microseconds. Medians of --repeats timed runs each.

    python bench/plugins.py --library build/libpolygraphy_ext_plugins.so --out bench/results_gpu
    ncu -k regex:"rowNorm|biasGelu" python bench/plugins.py --library ... --profile LayerNorm:fp16:1024

Writes plugins.json, plugins.png (GB/s vs H) and plugins.md (the table) under --out, and prints the table.
"""

import argparse
import datetime
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "plugins"))
sys.path.insert(0, str(REPO / "trt_plugins" / "tools"))
from plugin_cases import PLUGINS, Case, make_tensors, min_bytes, torch_eager  # noqa: E402
from plugin_harness import PluginHarness  # noqa: E402

HIDDEN = (256, 512, 768, 1024, 2048, 4096, 5120, 8192, 12288, 16384)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# The copy and every case move the same bytes, so both pay the same launch ramp and drain.
WORKING_SET = 1 << 30
SMALL_WORKING_SET = 256 << 20
SMALL = ((1, 768), (64, 768), (1024, 768), (64, 4096), (1024, 4096))


def time_ms(fn, repeats, inner=10):
    """Median milliseconds of one call of fn, from CUDA events around `inner` back-to-back calls (so the host
    cost of issuing a call overlaps the previous call's GPU work instead of being timed)."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / inner)
    return statistics.median(times)


def graph_ms(fn, repeats, inner=50):
    """Median ms per call with launch overhead removed: `inner` calls captured in a CUDA graph, replayed."""
    fn()
    torch.cuda.synchronize()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(inner):
            fn()
    return time_ms(graph.replay, repeats, inner=1) / inner


def copy_gbps(repeats, moved_bytes=WORKING_SET):
    """GB/s (bytes read + written) of a device-to-device copy moving `moved_bytes` in all."""
    src = torch.randn(moved_bytes // 8, device="cuda")
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), repeats)
    return 2 * src.numel() * 4 / ms / 1e6


def bench_case(harness, case, repeats, compiled=None):
    inputs, outputs = make_tensors(case)
    session = harness.prepare(case.plugin, case.fields(), inputs, outputs)
    ours = time_ms(lambda: session.enqueue(inputs, outputs), repeats)
    eager = time_ms(lambda: torch_eager(case, inputs), repeats)
    row = {"ours_ms": ours, "torch_ms": eager}
    if compiled is not None:
        row["compile_ms"] = time_ms(lambda: compiled(case, inputs), repeats)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", required=True, help="libpolygraphy_ext_plugins.so to benchmark")
    parser.add_argument("--out", default=str(REPO / "bench" / "results_gpu"), help="output folder")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per measurement (median reported)")
    parser.add_argument("--plugins", nargs="+", default=list(PLUGINS), help="plugins to benchmark")
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), help="dtypes to benchmark")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (fp16, H in 1024/4096/16384)")
    parser.add_argument("--profile", nargs="+", metavar="PLUGIN:DTYPE:H",
                        help="only run each of these cases once (the benchmark's working set) and exit: for a profiler")
    args = parser.parse_args()
    if args.profile:
        profile(args)
        return

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    harness = PluginHarness(args.library, build_dir=Path(tempfile.mkdtemp(prefix="pgx-harness-")))
    copy = copy_gbps(args.repeats)
    # Diagnostic only: how much of the copy's rate the launch ramp and drain cost when only 256 MiB move.
    copy_same_size = copy_gbps(args.repeats, SMALL_WORKING_SET)
    compiled = torch.compile(torch_eager, dynamic=False) if args.compile else None
    results = []
    for plugin in args.plugins:
        for dname in args.dtypes:
            for hidden in HIDDEN:
                case = large_case(plugin, dname, hidden)
                rows = case.rows
                use_compile = compiled if dname == "fp16" and hidden in (1024, 4096, 16384) else None
                row = bench_case(harness, case, args.repeats, use_compile)
                nbytes = min_bytes(case)
                row.update(plugin=plugin, dtype=dname, hidden=hidden, rows=rows, bytes=nbytes)
                for key in ("ours", "torch", "compile"):
                    if f"{key}_ms" in row:
                        row[f"{key}_gbps"] = nbytes / row[f"{key}_ms"] / 1e6
                        row[f"{key}_of_copy"] = row[f"{key}_gbps"] / copy
                row["speedup_vs_torch"] = row["torch_ms"] / row["ours_ms"]
                results.append(row)
                print(f"{plugin:14s} {dname} H={hidden:6d} rows={rows:8d} ours {row['ours_of_copy']:.3f} of copy, "
                      f"torch {row['torch_of_copy']:.3f}, x{row['speedup_vs_torch']:.2f}", flush=True)
    small = []
    for plugin in args.plugins:
        for rows, hidden in SMALL:
            case = Case(plugin, rows, hidden, torch.float16)
            inputs, outputs = make_tensors(case)
            session = harness.prepare(case.plugin, case.fields(), inputs, outputs)
            ours = graph_ms(lambda: session.enqueue(inputs, outputs), args.repeats) * 1e3
            eager = graph_ms(lambda: torch_eager(case, inputs), args.repeats) * 1e3
            small.append(dict(plugin=plugin, dtype="fp16", rows=rows, hidden=hidden, ours_us=ours, torch_us=eager))
    report = {
        "gpu": torch.cuda.get_device_name(),
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "command": " ".join(sys.argv),
        "copy_gbps": copy,
        "copy_same_size_gbps": copy_same_size,
        "large": results,
        "small": small,
    }
    (out / "plugins.json").write_text(json.dumps(report, indent=1))
    table = render_table(report)
    (out / "plugins.md").write_text(table)
    plot(report, out / "plugins.png")
    print(table)


def large_case(plugin, dname, hidden):
    """The benchmark's case for one plugin, dtype and H: enough rows for a working set of WORKING_SET bytes."""
    dtype = DTYPES[dname]
    per_row = min_bytes(Case(plugin, 2, hidden, dtype)) - min_bytes(Case(plugin, 1, hidden, dtype))
    return Case(plugin, -(-WORKING_SET // per_row), hidden, dtype)


def profile(args):
    harness = PluginHarness(args.library, build_dir=Path(tempfile.mkdtemp(prefix="pgx-harness-")))
    for spec in args.profile:
        plugin, dname, hidden = spec.split(":")
        case = large_case(plugin, dname, int(hidden))
        inputs, outputs = make_tensors(case)
        harness.run(case.plugin, case.fields(), inputs, outputs)
        torch.cuda.synchronize()
        print(f"profiled {spec}: {case.rows} rows")


def render_table(report):
    lines = [f"GPU: {report['gpu']}; copy {report['copy_gbps']:.0f} GB/s (read+write, 1 GiB moved, as in every case; "
             f"{report.get('copy_same_size_gbps', 0):.0f} GB/s moving 256 MiB); torch {report['torch']}", ""]
    lines.append("| plugin | dtype | median of copy (ours) | min of copy (ours) | median of copy (torch) | "
                 "median speedup vs torch | min speedup vs torch |")
    lines.append("|---|---|---|---|---|---|---|")
    groups = {}
    for r in report["large"]:
        groups.setdefault((r["plugin"], r["dtype"]), []).append(r)
    for (plugin, dtype), rows in groups.items():
        ours = [r["ours_of_copy"] for r in rows]
        torch_ = [r["torch_of_copy"] for r in rows]
        speed = [r["speedup_vs_torch"] for r in rows]
        lines.append(f"| {plugin} | {dtype} | {statistics.median(ours):.3f} | {min(ours):.3f} | "
                     f"{statistics.median(torch_):.3f} | {statistics.median(speed):.2f}x | {min(speed):.2f}x |")
    compiled = [r for r in report["large"] if "compile_ms" in r]
    if compiled:
        lines += ["", "| plugin | H | ours of copy | torch.compile of copy | torch eager of copy |", "|---|---|---|---|---|"]
        for r in compiled:
            lines.append(f"| {r['plugin']} | {r['hidden']} | {r['ours_of_copy']:.3f} | {r['compile_of_copy']:.3f} | "
                         f"{r['torch_of_copy']:.3f} |")
    lines += ["", "| plugin (fp16) | rows x H | ours (us) | torch eager (us) |", "|---|---|---|---|"]
    for r in report["small"]:
        lines.append(f"| {r['plugin']} | {r['rows']} x {r['hidden']} | {r['ours_us']:.2f} | {r['torch_us']:.2f} |")
    return "\n".join(lines) + "\n"


def plot(report, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    plugins = sorted({r["plugin"] for r in report["large"]})
    fig, axes = plt.subplots(1, len(plugins), figsize=(5 * len(plugins), 4), squeeze=False)
    for ax, plugin in zip(axes[0], plugins):
        for dtype in DTYPES:
            rows = [r for r in report["large"] if r["plugin"] == plugin and r["dtype"] == dtype]
            if not rows:
                continue
            hs = [r["hidden"] for r in rows]
            line = ax.plot(hs, [r["ours_gbps"] for r in rows], marker="o", label=f"ours {dtype}")[0]
            ax.plot(hs, [r["torch_gbps"] for r in rows], ls="--", color=line.get_color(), label=f"torch {dtype}")
        ax.axhline(report["copy_gbps"], color="k", lw=1, label="D2D copy")
        ax.set_xscale("log", base=2)
        ax.set_title(plugin)
        ax.set_xlabel("H")
        ax.set_ylabel("GB/s")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{report['gpu']} ({report['date']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()

"""GPU benchmark of the trt_plugins kernels (through their TensorRT plugin enqueue) against every public contender.

For each plugin, dtype and hidden size H (256..16384) at a working set of 1 GiB (minimum bytes: inputs read once,
outputs written once), every contender runs on the same tensors, interleaved (the order rotates every round), over
--allocations fresh allocations of those tensors (results move with where buffers sit in GPU memory), and is
reported as the median over all rounds of its time, and as a fraction of a device-to-device copy of the same bytes
timed in the same rounds. Contenders:

- ours: the plugin library (--library); --baseline NAME=LIB adds another build of it (an A/B in one run);
- torch eager: F.layer_norm, x + skip + bias then F.layer_norm, F.rms_norm, F.gelu(x + bias);
- torch.compile (--compile): the eager function compiled for each shape on its own (dynamo reset, static shapes,
  fullgraph), with exactly one graph compiled per shape asserted, so no shape falls back to eager at the recompile
  limit;
- Liger-Kernel (LayerNorm, RMSNorm; when `liger_kernel` is importable): its Triton forward kernels.

--variants light-2 light-4 ... (a library built with -DPOLYGRAPHY_EXT_TUNING=ON) adds one column per light
row-norm variant, forced at every shape where it holds the row ("ours@light-2"), to tune planRowNorm's rules.

Small, launch-bound shapes are timed as CUDA-graph replays and reported in microseconds.

    python bench/plugins.py --library build/libpolygraphy_ext_plugins.so --compile --out bench/results_gpu
    ncu -k regex:"rowNorm|biasGelu" python bench/plugins.py --library ... --profile LayerNorm:fp16:1024

Writes plugins.json, plugins.png (GB/s vs H) and plugins.md (the tables) under --out, and prints the tables.
"""

import argparse
import datetime
import json
import random
import statistics
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "plugins"))
sys.path.insert(0, str(REPO / "trt_plugins" / "tools"))
from plugin_cases import PLUGINS, Case, make_tensors, min_bytes, tolerance, torch_eager  # noqa: E402
from plugin_harness import PluginError, PluginHarness  # noqa: E402

HIDDEN = (256, 512, 768, 1024, 2048, 4096, 5120, 8192, 12288, 16384)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
WORKING_SET = 1 << 30
SMALL = ((1, 768), (64, 768), (1024, 768), (64, 4096), (1024, 4096))
LIGER_PLUGINS = ("LayerNorm", "RMSNorm")
ORDER = random.Random(17)


def events_ms(fn, inner):
    """Milliseconds per call of fn, from CUDA events around `inner` back-to-back calls (the host cost of issuing a
    call overlaps the previous call's GPU work instead of being timed)."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(inner):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / inner


def interleaved_ms(contenders, rounds, order, inner=10):
    """{name: [ms per call, one per round]}: each round times every contender once, in an order shuffled per round
    (`order`, a random.Random), so that drifting clocks, a neighbour's load and the dirty L2 lines a predecessor
    leaves behind (a fixed order made identical kernels differ by 0.6%) reach them all alike."""
    names = list(contenders)
    for fn in contenders.values():
        fn()
    torch.cuda.synchronize()
    times = {name: [] for name in names}
    for _ in range(rounds):
        order.shuffle(names)
        for name in names:
            times[name].append(events_ms(contenders[name], inner))
    return times


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
    graph.replay()
    torch.cuda.synchronize()
    return statistics.median(events_ms(graph.replay, 1) for _ in range(repeats)) / inner


class CompiledPerShape:
    """torch.compile of the eager op for one case's shapes only: dynamo's caches are reset first, shapes are static,
    the graph must be whole, and the count of graphs handed to Inductor is kept, so that a recompile (and, past
    dynamo's recompile limit, a silent fall back to eager) shows as more than one."""

    def __init__(self, case):
        from torch._inductor.compile_fx import compile_fx

        torch._dynamo.reset()
        self.graphs = 0

        def inductor(gm, example_inputs):
            self.graphs += 1
            return compile_fx(gm, example_inputs)

        def op(*inputs):
            return torch_eager(case, list(inputs))

        self._fn = torch.compile(op, backend=inductor, dynamic=False, fullgraph=True)

    def __call__(self, inputs):
        return self._fn(*inputs)


def liger_op(case):
    """Liger-Kernel's forward for the case, or None when it has none (or liger_kernel is not installed)."""
    if case.plugin not in LIGER_PLUGINS:
        return None
    try:
        from liger_kernel.ops.layer_norm import LigerLayerNormFunction
        from liger_kernel.ops.rms_norm import LigerRMSNormFunction
    except ImportError:
        return None
    if case.plugin == "LayerNorm":
        return lambda inputs: LigerLayerNormFunction.apply(inputs[0], inputs[1], inputs[2], case.epsilon)
    return lambda inputs: LigerRMSNormFunction.apply(inputs[0], inputs[1], case.epsilon)


def first_output(result):
    return result[0] if isinstance(result, (tuple, list)) else result


def bench_case(harnesses, case, args):
    """({contender: median ms}, contenders whose output differed from ours, graphs torch.compile built) over
    args.allocations fresh allocations x args.repeats interleaved rounds; "copy" is a device-to-device copy moving the
    case's minimum bytes (half read, half written)."""
    nbytes = min_bytes(case)
    use_compile = args.compile and (not args.compile_hidden or case.hidden in args.compile_hidden)
    compiled = CompiledPerShape(case) if use_compile else None
    liger = liger_op(case)
    samples = {}
    mismatches = set()
    for _ in range(args.allocations):
        inputs, outputs = make_tensors(case)
        src = torch.empty(nbytes // 2, dtype=torch.uint8, device="cuda").random_()
        dst = torch.empty_like(src)
        contenders = {"copy": lambda: dst.copy_(src)}
        for name, harness in harnesses.items():
            session = harness.prepare(case.plugin, case.fields(), inputs, outputs)
            contenders[name] = lambda s=session: s.enqueue(inputs, outputs)
        if case.plugin != "BiasGelu":
            session = harnesses["ours"].prepare(case.plugin, case.fields(), inputs, outputs)
            for variant in args.variants:
                contenders[f"ours@{variant}"] = lambda s=session, v=variant: forced(
                    harnesses["ours"], v, s, inputs, outputs)
        contenders["eager"] = lambda: torch_eager(case, inputs)
        if compiled is not None:
            contenders["compile"] = lambda: compiled(inputs)
        if liger is not None:
            contenders["liger"] = lambda: liger(inputs)
        with torch.no_grad():
            mismatches.update(mismatching_contenders(case, outputs, contenders))
            for name, times in interleaved_ms(contenders, args.repeats, ORDER).items():
                samples.setdefault(name, []).extend(times)
        del inputs, outputs, src, dst, contenders
    ms = {name: statistics.median(times) for name, times in samples.items()}
    return ms, sorted(mismatches), (compiled.graphs if compiled is not None else None)


def forced(harness, variant, session, inputs, outputs):
    """One enqueue with the light variant `variant` forced (where it holds the row), then the plan's again."""
    harness.tune_row_norm_variant(variant)
    try:
        session.enqueue(inputs, outputs)
    finally:
        harness.tune_row_norm_variant("")


def mismatching_contenders(case, outputs, contenders):
    """The contenders whose output differs from ours by more than twice the dtype's tolerance on these inputs (each
    must compute the same op for its time to mean anything). Forced variants of ours write our output tensors: every
    output (the residual sum too) must match the plan's to the dtype's tolerance."""
    contenders["ours"]()
    ours = [o.double() for o in outputs]
    atol, rtol = tolerance(case.dtype)
    wrong = []
    for name in ("eager", "compile", "liger", *(n for n in contenders if n.startswith("ours@"))):
        if name not in contenders:
            continue
        if name.startswith("ours@"):
            contenders[name]()
            pairs = [(o.double(), ref) for o, ref in zip(outputs, ours)]
        else:
            pairs = [(first_output(contenders[name]()).double(), ours[0])]
        for got, ref in pairs:
            if not torch.allclose(got, ref, atol=(1 if name.startswith("ours@") else 2) * atol,
                                  rtol=(1 if name.startswith("ours@") else 2) * rtol, equal_nan=True):
                wrong.append(f"{name} (max difference {(got - ref).abs().max().item():.3g})")
                break
    return wrong


def large_case(plugin, dname, hidden):
    """The benchmark's case for one plugin, dtype and H: enough rows for a working set of WORKING_SET bytes."""
    dtype = DTYPES[dname]
    per_row = min_bytes(Case(plugin, 2, hidden, dtype)) - min_bytes(Case(plugin, 1, hidden, dtype))
    return Case(plugin, -(-WORKING_SET // per_row), hidden, dtype)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", required=True, help="libpolygraphy_ext_plugins.so to benchmark")
    parser.add_argument("--baseline", nargs="+", action="extend", default=[], metavar="NAME=LIBRARY",
                        help="other builds of the library, timed as further contenders")
    parser.add_argument("--out", default=str(REPO / "bench" / "results_gpu"), help="output folder")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds per allocation")
    parser.add_argument("--allocations", type=int, default=3, help="fresh allocations of every case's tensors")
    parser.add_argument("--plugins", nargs="+", default=list(PLUGINS), help="plugins to benchmark")
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), help="dtypes to benchmark")
    parser.add_argument("--hidden", nargs="+", type=int, default=list(HIDDEN), help="hidden sizes")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile, compiled for each shape")
    parser.add_argument("--compile-hidden", nargs="+", type=int,
                        help="with --compile, only these hidden sizes (each shape's compile takes seconds)")
    parser.add_argument("--no-small", action="store_true", help="skip the launch-bound shapes")
    parser.add_argument("--variants", nargs="+", default=[],
                        choices=("light-2", "light-3", "light-4", "light-8", "light-packed-3", "light-packed-4",
                                 "light-packed-8"),
                        help="also time these light row-norm variants forced (a -DPOLYGRAPHY_EXT_TUNING=ON build)")
    parser.add_argument("--profile", nargs="+", metavar="PLUGIN:DTYPE:H",
                        help="only run each of these cases once (the benchmark's working set) and exit: for a profiler")
    args = parser.parse_args()
    if args.profile:
        profile(args)
        return

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix="pgx-harness-"))
    harnesses = {"ours": PluginHarness(args.library, build_dir=build / "ours")}
    if args.variants:
        try:
            harnesses["ours"].tune_row_norm_variant("")
        except PluginError as err:
            sys.exit(f"--variants: {args.library}: {err}")
    for spec in args.baseline:
        name, path = spec.split("=", 1)
        harnesses[name] = PluginHarness(path, build_dir=build / name)
    liger_version = None
    try:
        import liger_kernel  # noqa: F401
        from importlib.metadata import version

        liger_version = version("liger-kernel")
    except ImportError:
        print("liger_kernel not installed: no Liger columns")
    results = []
    report = {
        "gpu": torch.cuda.get_device_name(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
        "torch": torch.__version__,
        "liger_kernel": liger_version,
        "command": " ".join(sys.argv),
        "method": f"{args.allocations} allocations x {args.repeats} interleaved rounds x 10 calls; medians",
        "large": results,
        "small": [],
        "complete": False,
    }
    for plugin in args.plugins:
        for dname in args.dtypes:
            for hidden in args.hidden:
                case = large_case(plugin, dname, hidden)
                ms, mismatches, graphs = bench_case(harnesses, case, args)
                row = dict(plugin=plugin, dtype=dname, hidden=hidden, rows=case.rows, bytes=min_bytes(case),
                           ms=ms, of_copy={name: ms["copy"] / t for name, t in ms.items() if name != "copy"},
                           mismatches=mismatches, compiled_graphs=graphs)
                if mismatches:
                    print(f"WARNING {plugin} {dname} H={hidden}: output differs from ours: {', '.join(mismatches)}")
                others = {n: f for n, f in row["of_copy"].items() if n in ("eager", "compile", "liger")}
                best = max(others, key=others.get)
                row["best_other"] = best
                row["ours_over_best_other"] = row["of_copy"]["ours"] / others[best]
                results.append(row)
                print(f"{plugin:14s} {dname} H={hidden:6d} " + " ".join(
                    f"{n} {f:.3f}" for n, f in row["of_copy"].items()) + f"  ours/{best} {row['ours_over_best_other']:.3f}",
                    flush=True)
                # Written after every case: a run cut short still leaves what it measured.
                (out / "plugins.json").write_text(json.dumps(report, indent=1))
    report["small"] = [] if args.no_small else bench_small(harnesses["ours"], args)
    report["complete"] = True
    (out / "plugins.json").write_text(json.dumps(report, indent=1))
    table = render_table(report)
    (out / "plugins.md").write_text(table)
    plot(report, out / "plugins.png")
    print(table)
    recompiled = [r for r in results if r["compiled_graphs"] not in (None, 1)]
    if recompiled:
        sys.exit(f"torch.compile recompiled (more than one graph for one shape) at {len(recompiled)} cases: its "
                 "column fell back to eager there")


def bench_small(harness, args):
    small = []
    for plugin in args.plugins:
        for rows, hidden in SMALL:
            case = Case(plugin, rows, hidden, torch.float16)
            inputs, outputs = make_tensors(case)
            session = harness.prepare(case.plugin, case.fields(), inputs, outputs)
            with torch.no_grad():
                ours = graph_ms(lambda: session.enqueue(inputs, outputs), 20) * 1e3
                eager = graph_ms(lambda: torch_eager(case, inputs), 20) * 1e3
            small.append(dict(plugin=plugin, dtype="fp16", rows=rows, hidden=hidden, ours_us=ours, torch_us=eager))
    return small


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
    rows = report["large"]
    names = list(rows[0]["of_copy"]) if rows else []
    lines = [f"GPU: {report['gpu']}; {report['date']}; torch {report['torch']}; liger-kernel "
             f"{report['liger_kernel'] or 'not installed'}; {report['method']}; fraction of a device-to-device copy "
             "of the same bytes timed in the same rounds", ""]
    lines.append("| plugin | dtype | " + " | ".join(f"{n} median / min" for n in names) + " | ours / best other, min |")
    lines.append("|---|---|" + "---|" * (len(names) + 1))
    groups = {}
    for r in rows:
        groups.setdefault((r["plugin"], r["dtype"]), []).append(r)
    for (plugin, dtype), group in groups.items():
        cells = []
        for n in names:
            values = [r["of_copy"][n] for r in group if n in r["of_copy"]]
            cells.append(f"{statistics.median(values):.3f} / {min(values):.3f}" if values else "")
        worst = min(r["ours_over_best_other"] for r in group)
        lines.append(f"| {plugin} | {dtype} | " + " | ".join(cells) + f" | {worst:.3f} |")
    behind = [r for r in rows if r["ours_over_best_other"] < 1.0]
    lines += ["", f"Shapes where ours is behind the best of eager / compile / Liger: {len(behind)} of {len(rows)}", ""]
    if behind:
        lines += ["| plugin | dtype | H | ours | best other | ratio |", "|---|---|---|---|---|---|"]
        for r in behind:
            b = r["best_other"]
            lines.append(f"| {r['plugin']} | {r['dtype']} | {r['hidden']} | {r['of_copy']['ours']:.3f} | "
                         f"{b} {r['of_copy'][b]:.3f} | {r['ours_over_best_other']:.3f} |")
    lines += ["", "Per H, fraction of copy:", "", "| plugin | dtype | H | " + " | ".join(names) + " |",
              "|---|---|---|" + "---|" * len(names)]
    for r in rows:
        lines.append(f"| {r['plugin']} | {r['dtype']} | {r['hidden']} | "
                     + " | ".join(f"{r['of_copy'][n]:.3f}" if n in r["of_copy"] else "" for n in names) + " |")
    if report["small"]:
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
    dtypes = sorted({r["dtype"] for r in report["large"]})
    fig, axes = plt.subplots(len(dtypes), len(plugins), figsize=(5 * len(plugins), 3.5 * len(dtypes)), squeeze=False)
    for i, dtype in enumerate(dtypes):
        for j, plugin in enumerate(plugins):
            ax = axes[i][j]
            rows = [r for r in report["large"] if r["plugin"] == plugin and r["dtype"] == dtype]
            for name in rows[0]["of_copy"] if rows else []:
                points = [(r["hidden"], r["of_copy"][name]) for r in rows if name in r["of_copy"]]
                ax.plot(*zip(*points), marker="o" if name == "ours" else ".", label=name)
            ax.axhline(1.0, color="k", lw=1)
            ax.set_xscale("log", base=2)
            ax.set_title(f"{plugin} {dtype}")
            ax.set_xlabel("H")
            ax.set_ylabel("fraction of copy")
            ax.legend(fontsize=7)
    fig.suptitle(f"{report['gpu']} ({report['date']})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()

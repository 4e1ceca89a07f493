"""fuse-ln on large models: time and peak RSS vs `polygraphy surgeon sanitize`, and matching speed vs graph size.

    python bench/fuse_ln_large.py [--weights-gb 2.2] [--layernorms 100] [--repeats 3] [--json out.json]
                                  [--tools fuse-ln sanitize] [--baseline DIR]

1. Generates (in a temporary directory under /tmp, deleted afterwards) a model with > 2 GB of external-data
   weights: ``--layernorms`` blocks of MatMul(x, W_i) followed by a decomposed LayerNorm whose eps, gamma and
   beta also live in the external file. Runs ``polygraphy surgeon fuse-ln`` and ``polygraphy surgeon sanitize``
   on it as subprocesses, alternating, ``--repeats`` times each (after an ``os.sync()``, so no run pays for
   the previous one's disk writeback); reports the median wall time and the peak RSS of each child
   (os.wait4), and their ratios measured side by side in this one run.
2. Builds graphs of 50k / 100k / 200k nodes made of small LayerNorm chains and times import, the pass and
   export in-process, to show that matching is linear in graph size.

``--baseline DIR`` (a directory holding the ``polygraphy_ext`` package of an earlier commit, e.g. from
``git archive <commit> polygraphy_ext | tar -x -C DIR``) measures that code beside this one in the same run:
"fuse-ln@baseline" alternates with the other tools, and its matching speed runs in a child process; the
ratios this/baseline are printed and written. ``--tools fuse-ln`` leaves out sanitize (15 GB of RSS).
"""

import argparse
import datetime
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

POLYGRAPHY = str(Path(sys.executable).parent / "polygraphy")


def _external(name, array, handle, location):
    """A TensorProto pointing at ``array`` appended to the open external-data file."""
    offset = handle.tell()
    handle.write(np.ascontiguousarray(array).tobytes())
    tensor = TensorProto(name=name, data_type=helper.np_dtype_to_tensor_dtype(array.dtype), dims=array.shape)
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(array.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def make_large_model(directory: Path, weights_gb: float, layernorms: int) -> Path:
    """Chain of ``layernorms`` x (MatMul with a big external W, decomposed LayerNorm); never holds all weights."""
    dim = int((weights_gb * (1 << 30) / layernorms / 4) ** 0.5) + 1  # W_i: (dim, dim) float32
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    location = "weights.bin"
    x = "x"
    with open(directory / location, "wb") as handle:
        for i in range(layernorms):
            inits.append(_external(f"W{i}", rng.random((dim, dim), dtype=np.float32) - 0.5, handle, location))
            inits.append(_external(f"gamma{i}", rng.uniform(0.5, 1.5, dim).astype(np.float32), handle, location))
            inits.append(_external(f"beta{i}", rng.uniform(-1, 1, dim).astype(np.float32), handle, location))
            inits.append(_external(f"eps{i}", np.array(1e-5, np.float32), handle, location))
            p = f"b{i}"
            nodes += [
                helper.make_node("MatMul", [x, f"W{i}"], [f"{p}_h"], name=f"{p}_mm"),
                helper.make_node("ReduceMean", [f"{p}_h"], [f"{p}_m"], axes=[-1], name=f"{p}_rm1"),
                helper.make_node("Sub", [f"{p}_h", f"{p}_m"], [f"{p}_d"], name=f"{p}_sub"),
                helper.make_node("Mul", [f"{p}_d", f"{p}_d"], [f"{p}_sq"], name=f"{p}_sq"),
                helper.make_node("ReduceMean", [f"{p}_sq"], [f"{p}_v"], axes=[-1], name=f"{p}_rm2"),
                helper.make_node("Add", [f"{p}_v", f"eps{i}"], [f"{p}_ve"], name=f"{p}_add"),
                helper.make_node("Sqrt", [f"{p}_ve"], [f"{p}_s"], name=f"{p}_sqrt"),
                helper.make_node("Div", [f"{p}_d", f"{p}_s"], [f"{p}_n"], name=f"{p}_div"),
                helper.make_node("Mul", [f"{p}_n", f"gamma{i}"], [f"{p}_g"], name=f"{p}_mulg"),
                helper.make_node("Add", [f"{p}_g", f"beta{i}"], [f"{p}_y"], name=f"{p}_addb"),
            ]
            x = f"{p}_y"
    graph = helper.make_graph(
        nodes,
        "large",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, dim])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, dim])],
        inits,
    )
    path = directory / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path


def run_child(args):
    """(wall seconds, CPU seconds, peak RSS MiB) of one subprocess, measured on that child alone.

    CPU time (user + system) is reported too: on a shared machine wall time also measures the neighbours.
    """
    # stderr goes to a file, not a pipe: nobody reads a pipe during wait4, and a full one would block the child.
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(args)} failed:\n{err.read().decode(errors='replace')[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


# Runs a script with an earlier commit's polygraphy_ext first on sys.path. An editable install resolves the package
# through its own meta-path finder, ahead of sys.path: that finder is dropped for the baseline's children only.
_BASELINE_LAUNCHER = (
    "import runpy, sys; "
    "sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != 'ScikitBuildRedirectingFinder']; "
    "sys.path.insert(0, sys.argv[1]); sys.argv = sys.argv[2:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def baseline_command(directory, script, *args):
    return [sys.executable, "-c", _BASELINE_LAUNCHER, os.path.abspath(directory), script, *args]


def large_model_benchmark(weights_gb, layernorms, repeats, tools=("fuse-ln", "sanitize"), baseline=None):
    tmp = Path(tempfile.mkdtemp(prefix="fuse-ln-bench-", dir="/tmp"))
    try:
        t0 = time.perf_counter()
        model = make_large_model(tmp, weights_gb, layernorms)
        size = (tmp / "weights.bin").stat().st_size
        print(f"generated {model} with {size / 2**30:.2f} GiB external data in {time.perf_counter() - t0:.1f} s")
        commands = {
            "fuse-ln": lambda i: [POLYGRAPHY, "surgeon", "fuse-ln", str(model), "-o", str(tmp / f"f{i}" / "fused.onnx")],
            "sanitize": lambda i: [
                POLYGRAPHY, "surgeon", "sanitize", str(model), "-o", str(tmp / f"s{i}" / "sanitized.onnx"),
                "--external-data-path", "sanitized.data",
            ],
        }
        if baseline:
            # Both through the same launcher, so that neither pays for a start-up the other does not.
            commands["fuse-ln"] = lambda i: baseline_command(
                Path(__file__).resolve().parents[1], POLYGRAPHY, "surgeon", "fuse-ln", str(model), "-o",
                str(tmp / f"f{i}" / "fused.onnx"),
            )
            commands["fuse-ln@baseline"] = lambda i: baseline_command(
                baseline, POLYGRAPHY, "surgeon", "fuse-ln", str(model), "-o", str(tmp / f"b{i}" / "fused.onnx")
            )
        commands = {name: cmd for name, cmd in commands.items() if name.split("@")[0] in tools}
        samples = {name: [] for name in commands}
        for i in range(repeats):
            for name, command in commands.items():  # alternate so all see the same machine state
                # Flush what the previous run wrote (sanitize: 2.2 GB), so no run pays for another's writeback.
                os.sync()
                wall, cpu, rss = run_child(command(i))
                samples[name].append({"wall_s": wall, "cpu_s": cpu, "peak_rss_mib": rss})
                print(f"  {name:8s} run {i + 1}: {wall:7.2f} s wall, {cpu:7.2f} s CPU, peak RSS {rss:8.1f} MiB")
            for prefix in "sfb":  # keep disk use bounded: each output directory holds a 2 GB copy
                if i > 0 or prefix != "f":
                    shutil.rmtree(tmp / f"{prefix}{i}", ignore_errors=True)
        fused = onnx.load(str(tmp / "f0" / "fused.onnx"), load_external_data=False)
        fused_count = sum(n.op_type == "LayerNormalization" for n in fused.graph.node)
        medians = {
            name: {key: statistics.median(s[key] for s in runs) for key in ("wall_s", "cpu_s", "peak_rss_mib")}
            for name, runs in samples.items()
        }
        result = {
            "external_data_gib": size / 2**30,
            "layernorms": layernorms,
            "fused_layernorms": fused_count,
            "repeats": repeats,
            "samples": samples,
            "median": medians,
        }
        keys = ("wall_s", "cpu_s", "peak_rss_mib")
        if "sanitize" in medians:
            result["ratio_sanitize_over_fuse_ln"] = {k: medians["sanitize"][k] / medians["fuse-ln"][k] for k in keys}
        if "fuse-ln@baseline" in medians:
            result["ratio_fuse_ln_over_baseline"] = {k: medians["fuse-ln"][k] / medians["fuse-ln@baseline"][k] for k in keys}
            print("  fuse-ln / baseline: " + ", ".join(f"{k} {v:.2f}x" for k, v in result["ratio_fuse_ln_over_baseline"].items()))
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def chain_graph(num_chains: int, dim: int = 8) -> onnx.ModelProto:
    """``num_chains`` decomposed LayerNorms in sequence: 10 nodes each."""
    rng = np.random.default_rng(0)
    nodes, inits = [], [numpy_helper.from_array(np.array(1e-5, np.float32), "eps")]
    x = "x"
    for i in range(num_chains):
        p = f"c{i}"
        inits.append(numpy_helper.from_array(rng.uniform(0.5, 1.5, dim).astype(np.float32), f"{p}_gamma"))
        inits.append(numpy_helper.from_array(rng.uniform(-1, 1, dim).astype(np.float32), f"{p}_beta"))
        nodes += [
            helper.make_node("ReduceMean", [x], [f"{p}_m"], axes=[-1], name=f"{p}_rm1"),
            helper.make_node("Sub", [x, f"{p}_m"], [f"{p}_d"], name=f"{p}_sub"),
            helper.make_node("Mul", [f"{p}_d", f"{p}_d"], [f"{p}_sq"], name=f"{p}_sq"),
            helper.make_node("ReduceMean", [f"{p}_sq"], [f"{p}_v"], axes=[-1], name=f"{p}_rm2"),
            helper.make_node("Add", [f"{p}_v", "eps"], [f"{p}_ve"], name=f"{p}_add"),
            helper.make_node("Sqrt", [f"{p}_ve"], [f"{p}_s"], name=f"{p}_sqrt"),
            helper.make_node("Div", [f"{p}_d", f"{p}_s"], [f"{p}_n"], name=f"{p}_div"),
            helper.make_node("Mul", [f"{p}_n", f"{p}_gamma"], [f"{p}_g"], name=f"{p}_mulg"),
            helper.make_node("Add", [f"{p}_g", f"{p}_beta"], [f"{p}_y"], name=f"{p}_addb"),
            helper.make_node("Relu", [f"{p}_y"], [f"{p}_r"], name=f"{p}_relu"),
        ]
        x = f"{p}_r"
    graph = helper.make_graph(
        nodes, "chains", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, dim])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [2, dim])], inits,
    )
    return onnx.shape_inference.infer_shapes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    )


def matching_speed(node_counts, repeats):
    import onnx_graphsurgeon as gs

    from polygraphy_ext.passes.layernorm_fusion import fuse_layernorm

    rows = []
    for nodes in node_counts:
        model = chain_graph(nodes // 10)
        timings = {"import_s": [], "fuse_s": [], "export_s": []}
        for _ in range(repeats):
            gc.disable()  # as FuseLayerNorm does around import + pass
            t0 = time.perf_counter()
            graph = gs.import_onnx(model)
            t1 = time.perf_counter()
            report = fuse_layernorm(graph)
            t2 = time.perf_counter()
            gs.export_onnx(graph, do_type_check=False)
            t3 = time.perf_counter()
            gc.enable()
            timings["import_s"].append(t1 - t0)
            timings["fuse_s"].append(t2 - t1)
            timings["export_s"].append(t3 - t2)
        row = {"nodes": len(model.graph.node), "fused": len(report.fused)}
        row.update({key: statistics.median(values) for key, values in timings.items()})
        row["fuse_us_per_node"] = row["fuse_s"] / row["nodes"] * 1e6
        print(
            f"  {row['nodes']:7d} nodes: import {row['import_s']:.2f} s, fuse-ln pass {row['fuse_s']:.2f} s "
            f"({row['fuse_us_per_node']:.1f} us/node), export {row['export_s']:.2f} s, fused {row['fused']}"
        )
        rows.append(row)
    return rows


def machine_description():
    """Where and when the figures were taken: docs must cite the machine and the date with them."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 if hasattr(os, "sysconf") else None
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "memory_gib": round(memory, 1) if memory else None,
        "python": sys.version.split()[0],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights-gb", type=float, default=2.2, help="external data size (GiB), default 2.2")
    parser.add_argument("--layernorms", type=int, default=100, help="LayerNorm blocks in the large model")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per measurement (medians reported)")
    parser.add_argument("--node-counts", type=int, nargs="+", default=[50_000, 100_000, 200_000])
    parser.add_argument("--skip-large", action="store_true", help="only the matching-speed part")
    parser.add_argument("--json", default="bench/results/fuse_ln_large.json", help="where to write the results")
    parser.add_argument("--tools", nargs="+", choices=["fuse-ln", "sanitize"], default=["fuse-ln", "sanitize"])
    parser.add_argument("--baseline", help="directory with an earlier commit's polygraphy_ext package, measured beside")
    parser.add_argument("--matching-only", action="store_true", help=argparse.SUPPRESS)  # the baseline's child
    args = parser.parse_args()
    if args.matching_only:
        import polygraphy_ext

        print(f"  baseline (polygraphy_ext from {Path(polygraphy_ext.__file__).parent}):")
        Path(args.json).write_text(json.dumps(matching_speed(args.node_counts, args.repeats)) + "\n")
        return

    results = machine_description()
    results["command"] = " ".join(["python"] + sys.argv)
    print(f"{results['date_utc']} on {results['cpu']} ({results['cpu_count']} CPUs, {results['memory_gib']} GiB)")
    if not args.skip_large:
        print("large model: fuse-ln vs sanitize (subprocesses, same model, same run)")
        results["large_model"] = large_model_benchmark(
            args.weights_gb, args.layernorms, args.repeats, tuple(args.tools), args.baseline
        )
    elif Path(args.json).exists() and json.loads(Path(args.json).read_text()).get("large_model"):
        # Keep the large-model figures of an earlier run.
        results["large_model"] = json.loads(Path(args.json).read_text())["large_model"]
        med = results["large_model"]["median"]
        ratio = results["large_model"]["ratio_sanitize_over_fuse_ln"]
        print(
            f"median fuse-ln {med['fuse-ln']['wall_s']:.2f} s / {med['fuse-ln']['peak_rss_mib']:.0f} MiB; "
            f"sanitize {med['sanitize']['wall_s']:.2f} s / {med['sanitize']['peak_rss_mib']:.0f} MiB; "
            f"sanitize/fuse-ln: {ratio['wall_s']:.1f}x time, {ratio['peak_rss_mib']:.1f}x RSS"
        )
    print("matching speed vs graph size")
    results["matching"] = []
    if args.baseline:
        results["matching_baseline"] = []
    for count in args.node_counts:  # this code, then the baseline's, size by size: both see the same machine
        results["matching"] += matching_speed([count], args.repeats)
        if not args.baseline:
            continue
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            subprocess.run(
                baseline_command(
                    args.baseline, os.path.abspath(__file__), "--matching-only", "--json", out.name,
                    "--repeats", str(args.repeats), "--node-counts", str(count),
                ),
                check=True,
            )
            base = json.loads(Path(out.name).read_text())[0]
        mine = results["matching"][-1]
        mine["fuse_over_baseline"] = mine["fuse_s"] / base["fuse_s"]
        results["matching_baseline"].append(base)
        print(f"  {mine['nodes']:7d} nodes: fuse-ln pass {mine['fuse_over_baseline']:.2f}x the baseline's")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

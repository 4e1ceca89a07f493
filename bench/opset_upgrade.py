"""Exact opset upgrade on large graphs: time vs onnx.version_converter and vs a bare gs import/export, by size.

    python bench/opset_upgrade.py [--nodes 5000 20000 200000] [--converter-max-nodes 20000] [--repeats 3] [--json out.json]

Builds opset-11 graphs of chained blocks that all need rewriting when raised to 18 (Unsqueeze/Squeeze axes,
Softmax at a middle axis wrapped in Flatten/Reshape, ReduceMean axes), and times, in this one process and
alternating per repeat:
- ``ours``: gs.import_onnx + upgrade_default_opset + gs.export_onnx (what fuse-ln pays around its own pass);
- ``gs_roundtrip``: gs.import_onnx + gs.export_onnx alone (the floor any gs pass pays);
- ``version_converter``: onnx.version_converter.convert_version on the same ModelProto (its time grows
  quadratically here, so it is skipped above ``--converter-max-nodes``).
Reports medians and the ratios ours / gs_roundtrip and ours / version_converter, and writes JSON.
"""

import argparse
import datetime
import gc
import json
import platform
import statistics
import time

import onnx
import onnx_graphsurgeon as gs
from onnx import TensorProto, helper, version_converter

from polygraphy_ext.passes.opset_upgrade import upgrade_default_opset

NODES_PER_BLOCK = 5


def make_model(nodes: int) -> onnx.ModelProto:
    graph_nodes = []
    x = "x"
    for i in range(nodes // NODES_PER_BLOCK):
        graph_nodes += [
            helper.make_node("Unsqueeze", [x], [f"u{i}"], axes=[0]),
            helper.make_node("Squeeze", [f"u{i}"], [f"s{i}"], axes=[0]),
            helper.make_node("Softmax", [f"s{i}"], [f"p{i}"], axis=1),
            helper.make_node("ReduceMean", [f"p{i}"], [f"m{i}"], axes=[-1], keepdims=1),
            helper.make_node("Add", [f"p{i}", f"m{i}"], [f"y{i}"]),
        ]
        x = f"y{i}"
    graph = helper.make_graph(
        graph_nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [2, 3, 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=7)


def time_it(fn) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ours(model, target):
    graph = gs.import_onnx(model)
    upgrade_default_opset(graph, target)
    return gs.export_onnx(graph, do_type_check=False)


def gs_roundtrip(model, _target):
    return gs.export_onnx(gs.import_onnx(model), do_type_check=False)


def converter(model, target):
    return version_converter.convert_version(model, target)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[5_000, 20_000, 200_000])
    parser.add_argument("--converter-max-nodes", type=int, default=20_000)
    parser.add_argument("--target", type=int, default=18)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    rows = []
    for nodes in args.nodes:
        model = make_model(nodes)
        runners = [("ours", ours), ("gs_roundtrip", gs_roundtrip)]
        if nodes <= args.converter_max_nodes:
            runners.append(("version_converter", converter))
        times = {name: [] for name, _ in runners}
        for _ in range(args.repeats):
            for name, fn in runners:
                times[name].append(time_it(lambda: fn(model, args.target)))
        medians = {name: statistics.median(values) for name, values in times.items()}
        converted = medians.get("version_converter")
        row = {
            "nodes": nodes,
            "median_s": medians,
            "ours_over_gs_roundtrip": medians["ours"] / medians["gs_roundtrip"],
            "ours_over_version_converter": medians["ours"] / converted if converted else None,
            "ours_us_per_node": medians["ours"] / nodes * 1e6,
        }
        rows.append(row)
        versus = (
            f", version_converter {converted:.2f} s | ours/version_converter {row['ours_over_version_converter']:.2f}x"
            if converted
            else " | version_converter skipped"
        )
        print(
            f"{nodes:>7} nodes: ours {medians['ours']:.2f} s ({row['ours_us_per_node']:.1f} us/node), "
            f"gs import+export {medians['gs_roundtrip']:.2f} s (ours/gs {row['ours_over_gs_roundtrip']:.2f}x){versus}",
            flush=True,
        )
    result = {
        "benchmark": "opset_upgrade",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "onnx": onnx.__version__,
        "target": args.target,
        "repeats": args.repeats,
        "rows": rows,
    }
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()

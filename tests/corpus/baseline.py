"""Run the installed ``polygraphy surgeon fuse-ln`` and ``align-dims`` on every corpus file, as a user would.

    .venv/bin/python tests/corpus/baseline.py --json tests/corpus/baseline_before.json > table.md

For each file: fuse-ln ``--target native --rms`` and ``--target plugin --rms --skip`` (norms fused vs the norm
modules the source model called, the refusal reasons), and ``align-dims`` (dims padded with no new node / with a
Pad or Slice, the reasons candidates were left alone) against the Linear/Conv widths of the source model that
are not multiples of 8. Prints a markdown table (docs/corpus.md) and writes every report to ``--json``.
"""

import argparse
import json
import re
import os
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

RUNS = {
    "native": ["fuse-ln", "--target", "native", "--rms"],
    "plugin": ["fuse-ln", "--target", "plugin", "--rms", "--skip"],
    "align": ["align-dims"],
    "native_check": ["fuse-ln", "--target", "native", "--rms", "--check"],
    "align_check": ["align-dims", "--check"],
}
NATIVE_NORM_OPS = ("LayerNormalization", "RMSNormalization", "SimplifiedLayerNormalization", "SkipLayerNormalization")


def _polygraphy():
    exe = Path(sys.executable).with_name("polygraphy")
    return str(exe) if exe.exists() else "polygraphy"


def run_one(entry, run, tmp):
    out = Path(tmp) / f"{entry.name}.{run}.onnx"
    report = Path(tmp) / f"{entry.name}.{run}.json"
    cmd = [_polygraphy(), "surgeon", *RUNS[run][:1], str(entry.path), "-o", str(out), *RUNS[run][1:], "--report", str(report)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, POLYGRAPHY_USE_TENSORRT_RTX="1"))
    result = {"command": " ".join(["polygraphy", "surgeon", *RUNS[run][:1], entry.file, "-o", "out.onnx", *RUNS[run][1:]]),
              "exit_code": proc.returncode}
    if proc.returncode != 0 or not report.exists():
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith(("[!]", "[E]"))] or lines[-1:]
        result["error"] = errors[0].removeprefix("[!] ").removeprefix("[E] ") if errors else f"exit {proc.returncode}"
        return result
    result["report"] = json.loads(report.read_text())
    return result


def _reasons(items, key="reason"):
    return Counter(i[key] for i in items if i.get(key)).most_common()


def _native_nodes(path):
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    nodes, graphs = Counter(), [model.graph]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            if node.op_type in NATIVE_NORM_OPS:
                nodes[node.op_type] += 1
            graphs += [a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]
    return dict(nodes)


def _odd_outputs(entry):
    """Linear/Conv layers whose output width is not a multiple of 8: the dims align-dims should pad."""
    return [f"{lin['name']}:{lin['out']}" for lin in entry.linears if lin["out"] % 8]


def summarize(entry, results):
    row = {"file": entry.file, "model": entry.model, "exporter": entry.exporter, "opset": entry.opset,
           "dtype": entry.dtype, "expected": {"layernorm": entry.count("layernorm"), "rmsnorm": entry.count("rmsnorm"),
           "residual_add_layernorm": entry.counts.get("residual_add_layernorm")}, "odd_widths": list(entry.odd_widths),
           "odd_outputs": _odd_outputs(entry), "native_norm_nodes_before": _native_nodes(entry.path)}
    for run in ("native", "plugin"):
        res = results[run]
        if "error" in res:
            row[run] = {"error": res["error"]}
            continue
        rep = res["report"]
        row[run] = {
            "candidates": rep["num_candidates"],
            "fused": rep["num_fused"],
            "fused_by_op": rep["fused_by_op"],
            "opset_after": rep["opset_after"],
            "reasons": _reasons([c for c in rep["candidates"] if not c["fused"]]),
        }
    res = results["align"]
    if "error" in res:
        row["align"] = {"error": res["error"]}
    else:
        rep = res["report"]
        row["align"] = {
            "padded": [f"{d['op']} {d['side']} {d['old_size']}->{d['new_size']} ({d['boundary']})" for d in rep["aligned"]],
            "zero_cost": sum(1 for d in rep["aligned"] if d["boundary"] == "none"),
            "with_pad_or_slice": sum(1 for d in rep["aligned"] if d["boundary"] != "none"),
            "reasons": [(r, n) for r, n in _reasons(rep["left_alone"]) if r != "already aligned"],
        }
    for run in ("native_check", "align_check"):
        res = results[run]
        row[run] = "pass" if "error" not in res else res["error"]
    return row


def _norm_cell(run, expected, already):
    if "error" in run:
        return f"0/{expected}: error"
    if not run["candidates"] and already:
        return f"0/{expected}: 0 candidates, " + ", ".join(f"{n} {op}" for op, n in already.items()) + " already in the graph"
    by_op = run["fused_by_op"]
    ops = ", ".join(f"{n} {op}" for op, n in sorted(by_op.items())) or "0"
    return f"{run['fused']}/{expected} ({ops})" if run["fused"] else f"0/{expected}"


def _first_reason(run, width=90):
    if "error" in run:
        return "ERROR: " + run["error"][:width]
    if not run["reasons"]:
        return ""
    reason, n = run["reasons"][0]
    more = f" (+{len(run['reasons']) - 1} other)" if len(run["reasons"]) > 1 else ""
    reason = reason.replace("|", "\\|")
    return f"{n}x {reason[:width]}{'...' if len(reason) > width else ''}{more}"


def counts_table(entries):
    """One row per source model: what every pass should find in each of its files."""
    out = ["| model | files | LayerNorm | RMSNorm | GELU erf | GELU tanh | QuickGELU | residual Add + LN | odd widths (at 8) |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    by_model = {}
    for e in entries:
        by_model.setdefault(e.model, []).append(e)
    for model, group in by_model.items():
        e = group[0]
        res = e.counts.get("residual_add_layernorm")
        out.append(
            f"| {model} | {len(group)} | {e.count('layernorm')} | {e.count('rmsnorm')} | {e.count('gelu_erf')} | "
            f"{e.count('gelu_tanh')} | {e.count('quick_gelu')} | {'-' if res is None else res} | "
            f"{', '.join(map(str, e.odd_widths)) or '-'} |"
        )
    return "\n".join(out)


def _align_refusals(reasons, most=2, width=120):
    """The reasons an odd width was not padded (a padding that was refused, a bias that hid a GEMM), shortened."""
    picked = Counter()
    for reason, n in reasons:
        if reason.startswith("padding ") or "bias" in reason:
            short = re.sub(r"; boundaries: .*?: ", ": ", reason)
            short = re.sub(r" \(> max overhead [^)]*\)", "", short)
            picked[short[:width].replace("|", "\\|")] += n
    cells = [f"{n}x {r}" for r, n in picked.most_common(most)]
    more = len(picked) - most
    return "; ".join(cells) + (f" (+{more} other)" if more > 0 else "")


def _check_cell(value, width=110):
    if value == "pass":
        return "pass"
    if "Name:" in value:  # onnxruntime's message: the node and its status say what went wrong
        value = "onnxruntime: " + value[value.index("Name:") :].replace("Status Message: ", "")
    value = value.replace("|", "\\|")
    return "FAIL: " + value[:width] + ("..." if len(value) > width else "")


def markdown(rows):
    out = [
        "| file | LN+RMS in model | native --rms | native --check | plugin --rms --skip (residual Add+LN in model) "
        "| first native refusal | first plugin refusal |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        exp = r["expected"]["layernorm"] + r["expected"]["rmsnorm"]
        residual = r["expected"]["residual_add_layernorm"]
        already = r["native_norm_nodes_before"]
        out.append(
            f"| {r['file']} | {r['expected']['layernorm']}+{r['expected']['rmsnorm']} | "
            f"{_norm_cell(r['native'], exp, already)} | {_check_cell(r['native_check'])} | "
            f"{_norm_cell(r['plugin'], exp, already)}{'' if residual is None else f' ({residual})'} | "
            f"{_first_reason(r['native'])} | {_first_reason(r['plugin'])} |"
        )
    out += ["", "| file | odd output widths in model (Linear/Conv) | padded, no new node | padded with Pad/Slice "
            "| align --check | odd widths left alone: why |",
            "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        a = r["align"]
        odd = Counter(o.rsplit(":", 1)[1] for o in r["odd_outputs"])
        odd_cell = ", ".join(f"{n}x{w}" for w, n in odd.items()) or "-"
        if "error" in a:
            out.append(f"| {r['file']} | {odd_cell} | error | error | | {_first_reason(a)} |")
            continue
        out.append(
            f"| {r['file']} | {odd_cell} | {a['zero_cost']} | {a['with_pad_or_slice']} | "
            f"{_check_cell(r['align_check'])} | {_align_refusals(a['reasons'])} |"
        )
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write every row (with all refusal reasons) here")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--model", action="append", help="only these corpus models")
    parser.add_argument("--from-json", type=Path, help="print the tables of an earlier --json instead of running")
    args = parser.parse_args(argv)
    entries = corpus.entries(model=args.model)
    if args.from_json:
        print(counts_table(entries) + "\n\n" + markdown(json.loads(args.from_json.read_text())["rows"]))
        return
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        futures = {(e.file, run): pool.submit(run_one, e, run, tmp) for e in entries for run in RUNS}
        rows = [summarize(e, {run: futures[(e.file, run)].result() for run in RUNS}) for e in entries]
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    print(counts_table(entries))
    print()
    print(markdown(rows))


if __name__ == "__main__":
    main()

"""Run the installed ``polygraphy surgeon fuse-ln`` and ``align-dims`` on every corpus file, as a user would.

    .venv/bin/python tests/corpus/baseline.py --json tests/corpus/baseline_before.json > table.md

For each file: fuse-ln ``--target native --rms`` and ``--target plugin --rms --skip`` (norms fused vs the norm
modules the source model called, the refusal reasons), and ``align-dims`` (dims padded with no new node / with a
Pad or Slice, the reasons candidates were left alone) against the Linear/Conv widths of the source model that
are not multiples of 8. Prints a markdown table (docs/corpus.md) and writes every report to ``--json``.
"""

import argparse
import json
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
}


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
        result["error"] = lines[-1][:300] if lines else f"exit {proc.returncode}"
        return result
    result["report"] = json.loads(report.read_text())
    return result


def _reasons(items, key="reason"):
    return Counter(i[key] for i in items if i.get(key)).most_common()


def summarize(entry, results):
    row = {"file": entry.file, "model": entry.model, "exporter": entry.exporter, "opset": entry.opset,
           "dtype": entry.dtype, "expected": {"layernorm": entry.count("layernorm"), "rmsnorm": entry.count("rmsnorm"),
           "residual_add_layernorm": entry.counts.get("residual_add_layernorm")}, "odd_widths": list(entry.odd_widths)}
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
            "reasons": _reasons(rep["left_alone"]),
        }
    return row


def _norm_cell(run, expected):
    if "error" in run:
        return "error"
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


def markdown(rows):
    out = [
        "| file | norms (LN+RMS) | native --rms | plugin --rms --skip | first native refusal | first plugin refusal |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        exp = r["expected"]["layernorm"] + r["expected"]["rmsnorm"]
        out.append(
            f"| {r['file']} | {r['expected']['layernorm']}+{r['expected']['rmsnorm']} | "
            f"{_norm_cell(r['native'], exp)} | {_norm_cell(r['plugin'], exp)} | "
            f"{_first_reason(r['native'])} | {_first_reason(r['plugin'])} |"
        )
    out += ["", "| file | odd widths (source) | padded, no new node | padded with Pad/Slice | first reason left alone |",
            "| --- | --- | --- | --- | --- |"]
    for r in rows:
        a = r["align"]
        if "error" in a:
            out.append(f"| {r['file']} | {r['odd_widths']} | error | error | {_first_reason(a)} |")
            continue
        out.append(
            f"| {r['file']} | {', '.join(map(str, r['odd_widths'])) or '-'} | {a['zero_cost']} | "
            f"{a['with_pad_or_slice']} | {_first_reason(a)} |"
        )
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write every row (with all refusal reasons) here")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--model", action="append", help="only these corpus models")
    args = parser.parse_args(argv)
    entries = corpus.entries(model=args.model)
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        futures = {(e.file, run): pool.submit(run_one, e, run, tmp) for e in entries for run in RUNS}
        rows = [summarize(e, {run: futures[(e.file, run)].result() for run in RUNS}) for e in entries]
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()

"""The per-shape table of forced row-norm variants from `bench/plugins.py --variants` runs (a tuning build's JSON).

For each plugin, dtype and H: the plan's figure in each run ("ours", which may differ between runs whose rules
differed) and every light variant's median over the runs where it really ran (planRowNormAs falls back to the plan
where a variant does not hold the row; those figures are the plan's and are left out here), best first, as fractions
of a same-run device-to-device copy.

    python bench/variant_table.py bench/results_gpu/plugins_light_sweep.json > table.md

The input is either one report of bench/plugins.py or a {"runs": [report, ...]} file.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "trt_plugins" / "tools"))
from row_norm_plan import VARIANTS, Planner  # noqa: E402

ELEMENT_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
MANY = 1 << 18


def reports(paths):
    for path in paths:
        data = json.loads(Path(path).read_text())
        yield from data["runs"] if "runs" in data else [data]


def table(paths) -> str:
    planner = Planner()
    cells = {}
    for report in reports(paths):
        for row in report["large"]:
            key = (row["plugin"], row["dtype"], row["hidden"])
            for name, fraction in row["of_copy"].items():
                cells.setdefault(key, {}).setdefault(name.replace("ours@", ""), []).append(fraction)
    lines = ["| plugin | dtype | H | best first: contender median (runs) |", "|---|---|---|---|"]
    for (plugin, dtype, hidden), contenders in cells.items():
        skip = plugin == "SkipLayerNorm"
        shown = []
        for name, values in contenders.items():
            if name == "eager":
                continue
            if name.startswith("light"):
                if name not in VARIANTS:
                    continue  # a variant since removed from the library
                plan = planner.plan(MANY, hidden, ELEMENT_BYTES[dtype], skip, skip, rms=plugin == "RMSNorm",
                                    variant=name, tuning=True)
                if plan["variant"] != name:
                    continue
            shown.append((statistics.median(values), name, len(values)))
        shown.sort(reverse=True)
        lines.append(f"| {plugin} | {dtype} | {hidden} | "
                     + ", ".join(f"{name} {value:.3f} ({n})" for value, name, n in shown) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", help="plugins.json files of --variants runs, or a {'runs': [...]} file")
    args = parser.parse_args(argv)
    print(table(args.reports), end="")


if __name__ == "__main__":
    main()

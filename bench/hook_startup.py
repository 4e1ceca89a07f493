"""What the polygraphy-ext start-up hook costs every Python start, as the user pays it.

The `__polygraphy_ext_hook.pth` line imports the top-level module `_polygraphy_ext_hook` (a plain file in
site-packages), which puts one finder on sys.meta_path. Measured two ways, medians over many runs:
  1. `python -X importtime -c pass`: the import of `_polygraphy_ext_hook`, self and CUMULATIVE (what it pulls
     in, or makes an import-system finder pull in while locating it, e.g. an editable install's redirector
     importing importlib.util).
  2. wall clock of `python -c pass` with vs. without the `.pth` line: both arms start Python with -S and run
     site.main() themselves, one skipping our .pth file, interleaved so drift hits both alike.
Also checks that Python starts without importing polygraphy. Writes JSON (default bench/results/hook_startup.json).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

PTH_NAME = "__polygraphy_ext_hook.pth"

# Both arms run exactly this, differing only in SKIP: site's own start-up, with our .pth file left out or not.
SITE_MAIN = """
import site
SKIP = {skip!r}
_addpackage = site.addpackage
def addpackage(sitedir, name, known_paths):
    return known_paths if name == SKIP else _addpackage(sitedir, name, known_paths)
site.addpackage = addpackage
site.main()
"""


def importtime_us(env):
    """(self, cumulative) microseconds of the _polygraphy_ext_hook import."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"], capture_output=True, text=True, env=env)
    for line in proc.stderr.splitlines():
        # "import time: self [us] | cumulative | imported package"
        parts = [p.strip() for p in line.replace("import time:", "").split("|")]
        if len(parts) == 3 and parts[2] == "_polygraphy_ext_hook":
            return int(parts[0]), int(parts[1])
    raise SystemExit("_polygraphy_ext_hook was not imported at start: is the package installed?")


def wall_ms(env, skip):
    code = SITE_MAIN.format(skip=skip)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-S", "-c", code], check=True, env=env)
    return (time.perf_counter() - start) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("-o", "--output", default=str(Path(__file__).parent / "results" / "hook_startup.json"))
    args = parser.parse_args()

    env = dict(os.environ)
    env.pop("POLYGRAPHY_EXT_DISABLE_HOOK", None)
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys; print(int('_polygraphy_ext_hook' in sys.modules), "
         "int(any(m == 'polygraphy' or m.startswith('polygraphy.') for m in sys.modules)), "
         "int('importlib.util' in sys.modules))"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout.split()
    if loaded[0] != "1":
        sys.exit("the hook is not installed in this environment (pip install the package first)")
    site_packages = next(p for p in sys.path if p.endswith("site-packages"))
    if not os.path.exists(os.path.join(site_packages, PTH_NAME)):
        sys.exit(f"{PTH_NAME} is not in {site_packages}: reinstall the package")
    editable = any(name.startswith("_editable_skbc_polygraphy_ext") for name in os.listdir(site_packages))

    imports = [importtime_us(env) for _ in range(args.repeats)]
    with_pth, without_pth = [], []
    for _ in range(args.repeats):  # interleaved, so drift hits both sides alike
        with_pth.append(wall_ms(env, skip=None))
        without_pth.append(wall_ms(env, skip=PTH_NAME))

    result = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "repeats": args.repeats,
        "editable_install": editable,
        "polygraphy_imported_at_start": loaded[1] == "1",
        "importlib_util_imported_at_start": loaded[2] == "1",
        "hook_import_self_us_median": statistics.median(i[0] for i in imports),
        "hook_import_cumulative_us_median": statistics.median(i[1] for i in imports),
        "python_c_pass_ms_with_pth_median": statistics.median(with_pth),
        "python_c_pass_ms_without_pth_median": statistics.median(without_pth),
    }
    result["pth_cost_ms_median_difference"] = (
        result["python_c_pass_ms_with_pth_median"] - result["python_c_pass_ms_without_pth_median"]
    )
    result["pth_cost_ms_median_of_paired_differences"] = statistics.median(a - b for a, b in zip(with_pth, without_pth))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))
    print(f"install: {'editable' if editable else 'regular'}; Python {result['python']}; {args.repeats} repeats")
    print(f"_polygraphy_ext_hook import (-X importtime, medians): self {result['hook_import_self_us_median']:.0f} us, "
          f"cumulative {result['hook_import_cumulative_us_median']:.0f} us")
    print(f"python -c pass: with the .pth {result['python_c_pass_ms_with_pth_median']:.2f} ms, without "
          f"{result['python_c_pass_ms_without_pth_median']:.2f} ms (difference of medians "
          f"{result['pth_cost_ms_median_difference']:+.2f} ms, median of paired differences "
          f"{result['pth_cost_ms_median_of_paired_differences']:+.2f} ms)")
    print(f"imported at start: polygraphy {result['polygraphy_imported_at_start']}, "
          f"importlib.util {result['importlib_util_imported_at_start']}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

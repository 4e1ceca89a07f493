"""How much the polygraphy-ext start-up hook adds to every Python start (`python -c pass`).

The .pth line imports the top-level module _polygraphy_ext_hook (a plain file in site-packages), which puts
one finder on sys.meta_path. Measured two ways, medians over many runs:
  1. `python -X importtime -c pass`: the import time of _polygraphy_ext_hook as Python reports it (self, and
     cumulative: in an editable install scikit-build-core's redirecting finder imports importlib.util while
     the hook module is being located, which lands in the cumulative figure but is not the hook's cost).
  2. wall clock of `python -c pass` with the hook active vs. POLYGRAPHY_EXT_DISABLE_HOOK=1 (the finder is
     not installed, the import still happens) -- the cost of install() itself.
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


def importtime_us(env):
    """(self, cumulative) microseconds of the _polygraphy_ext_hook import."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"], capture_output=True, text=True, env=env)
    for line in proc.stderr.splitlines():
        # "import time: self [us] | cumulative | imported package"
        parts = [p.strip() for p in line.replace("import time:", "").split("|")]
        if len(parts) == 3 and parts[2] == "_polygraphy_ext_hook":
            return int(parts[0]), int(parts[1])
    raise SystemExit("_polygraphy_ext_hook was not imported at start: is the package installed?")


def wall_ms(env):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True, env=env)
    return (time.perf_counter() - start) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("-o", "--output", default=str(Path(__file__).parent / "results" / "hook_startup.json"))
    args = parser.parse_args()

    env_on = dict(os.environ)
    env_on.pop("POLYGRAPHY_EXT_DISABLE_HOOK", None)
    env_off = dict(env_on, POLYGRAPHY_EXT_DISABLE_HOOK="1")

    loaded = subprocess.run(
        [sys.executable, "-c", "import sys; print(int('_polygraphy_ext_hook' in sys.modules), "
         "int(any(m == 'polygraphy' or m.startswith('polygraphy.') for m in sys.modules)))"],
        capture_output=True, text=True, env=env_on, check=True,
    ).stdout.split()
    if loaded[0] != "1":
        sys.exit("the hook is not installed in this environment (pip install the package first)")

    imports = [importtime_us(env_on) for _ in range(args.repeats)]
    editable = any(name.startswith("_editable_skbc_polygraphy_ext") for name in os.listdir(
        next(p for p in sys.path if p.endswith("site-packages"))))
    on, off = [], []
    for _ in range(args.repeats):  # interleaved, so drift hits both sides alike
        on.append(wall_ms(env_on))
        off.append(wall_ms(env_off))

    result = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "repeats": args.repeats,
        "polygraphy_imported_at_start": loaded[1] == "1",
        "editable_install": editable,
        "hook_import_self_us_median": statistics.median(i[0] for i in imports),
        "hook_import_cumulative_us_median": statistics.median(i[1] for i in imports),
        "python_c_pass_ms_hook_on_median": statistics.median(on),
        "python_c_pass_ms_hook_disabled_median": statistics.median(off),
    }
    result["install_cost_ms_median"] = result["python_c_pass_ms_hook_on_median"] - result["python_c_pass_ms_hook_disabled_median"]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))
    print(f"_polygraphy_ext_hook import (-X importtime, median of {args.repeats}): "
          f"self {result['hook_import_self_us_median']:.0f} us, cumulative {result['hook_import_cumulative_us_median']:.0f} us"
          f"{' (editable install: cumulative includes the redirector importing importlib.util)' if editable else ''}")
    print(f"python -c pass: hook on {result['python_c_pass_ms_hook_on_median']:.2f} ms, "
          f"finder disabled {result['python_c_pass_ms_hook_disabled_median']:.2f} ms "
          f"(difference {result['install_cost_ms_median']:+.2f} ms, within run-to-run noise if tiny)")
    print(f"polygraphy imported at start: {result['polygraphy_imported_at_start']}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

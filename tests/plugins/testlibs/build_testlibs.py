"""Compiles the loader tests' plugin libraries from identity_plugin.cpp with g++ (no CUDA toolkit needed).

Also usable by hand: ``python tests/plugins/testlibs/build_testlibs.py OUT_DIR``.
"""

import shutil
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
TRT_INCLUDE = REPO / "trt_plugins" / "third_party" / "tensorrt" / "include"

# file name -> extra g++ arguments. "{trt_libs}" is the directory holding the TensorRT(-RTX) runtime library.
VARIANTS = {
    "libpgx_thirdparty.so": [],
    "libpgx_thirdparty_copy.so": [],  # same creator as libpgx_thirdparty.so: the duplicate-creator case
    "libpgx_other.so": ['-DPGX_TEST_PLUGIN_NAME="PgxTestOther"'],
    "libpgx_static.so": ['-DPGX_TEST_PLUGIN_NAME="PgxTestStaticIdentity"', "-DPGX_TEST_STATIC_REGISTRATION"],
    # Same statically registered creator: TensorRT accepts the second registration, the loader must not.
    "libpgx_static_copy.so": ['-DPGX_TEST_PLUGIN_NAME="PgxTestStaticIdentity"', "-DPGX_TEST_STATIC_REGISTRATION"],
    "libpgx_no_logger_finder.so": ["-DPGX_TEST_NO_LOGGER_FINDER"],
    "libpgx_no_entry_points.so": ["-DPGX_TEST_NO_ENTRY_POINTS"],
}


def compiler():
    return shutil.which("g++")


def build(out_dir: Path, trt_library: Path) -> dict:
    """Build every variant into ``out_dir``; the static one links against ``trt_library`` (by soname)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = [compiler(), "-std=c++17", "-shared", "-fPIC", "-O0", "-fvisibility=hidden", "-Wno-deprecated-declarations",
            f"-I{HERE / 'include'}", f"-I{TRT_INCLUDE}", str(HERE / "identity_plugin.cpp")]

    def one(item):
        name, extra = item
        cmd = base + extra + ["-o", str(out_dir / name)]
        if "-DPGX_TEST_STATIC_REGISTRATION" in extra:
            # Linked by soname without an rpath, like a vendor library: it loads only once TensorRT is loaded.
            cmd += [f"-L{trt_library.parent}", f"-l:{trt_library.name}"]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        return name, out_dir / name

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, VARIANTS.items()))


def loaded_trt_library():
    """The TensorRT(-RTX) runtime library this process has mapped (import TensorRT first), or None."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if "/libtensorrt_rtx.so." in path or "/libnvinfer.so." in path:
                return Path(path)
    return None


def write_foreign_arch_library(path: Path, e_machine: int = 183) -> Path:
    """A minimal 64-bit little-endian ELF shared-object header for another CPU (default aarch64)."""
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header += struct.pack("<HHIQQQIHHHHHH", 3, e_machine, 1, 0, 0, 0, 0, 64, 56, 0, 64, 0, 0)
    path.write_bytes(header)
    return path


if __name__ == "__main__":
    from polygraphy_ext.plugins import trt_env

    trt_env.import_trt()  # TensorRT, or TensorRT-RTX with POLYGRAPHY_USE_TENSORRT_RTX=1
    trt_library = loaded_trt_library()
    if trt_library is None:
        sys.exit("cannot locate the TensorRT runtime library this process loaded")
    for name, path in build(Path(sys.argv[1]), trt_library).items():
        print(path)

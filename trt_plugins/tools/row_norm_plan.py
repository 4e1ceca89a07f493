"""The row-norm launch plan (trt_plugins/plugins/row_norm/plan.cpp) on any architecture, without a GPU.

planRowNorm is a pure host function of the problem and the device's limits; this module calls it through the
harness shim (tools/harness.cpp, which compiles plan.cpp in) with the published limits of every architecture the
library ships code for, and prints the plan table:

    python trt_plugins/tools/row_norm_plan.py                       # every architecture, LayerNorm/SkipLayerNorm
    python trt_plugins/tools/row_norm_plan.py --arch sm_90 --op SkipLayerNorm --dtype fp16 --rows 600

Kernel registers are the compiler's and differ per architecture; without a device the plan assumes every kernel
takes its launch bound's cap: 128 registers per thread on chip, 64 or 85 for light rows (--registers overrides; on
sm_90 ptxas gives the on-chip kernels 84-128, the light ones 30-80). Where the cap and the real count differ in the
blocks per multiprocessor, so may the plan: fp32 H=12288 rows of x alone at 85 registers keep one light block per SM
(the plan stays on chip), at the 80 of sm_90 two (the plan holds them light). The launcher itself reads the real
counts (cudaFuncGetAttributes).
"""

import argparse
import ctypes
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plugin_harness import build_shim  # noqa: E402

# RowNormVariant, in plan.h's order.
VARIANTS = ("scalar-held", "held", "held-fewer", "staged", "staged-fewer", "packed", "packed-fewer",
            "packed-warp-filling", "ahead", "ahead-fewer", "light-2", "light-3", "light-4", "light-8",
            "light-packed-3", "light-packed-4", "light-packed-8", "streaming")
PACKED = {"packed", "packed-fewer", "packed-warp-filling", "ahead", "ahead-fewer"}
STAGED = {"staged", "staged-fewer"}
LIGHT = {"light-2", "light-3", "light-4", "light-8", "light-packed-3", "light-packed-4", "light-packed-8"}
LIGHT_ITEMS = {"light-2": 2, "light-3": 3, "light-4": 4, "light-8": 8, "light-packed-3": 3, "light-packed-4": 4,
               "light-packed-8": 8}


def max_threads(name, element_bytes):
    """A variant's launch bound (plan.h's rowNormMaxBlock): light rows whose share takes at most 16 registers 1024
    threads, larger shares 768; the others 512."""
    if name not in LIGHT:
        return 512
    share = LIGHT_ITEMS[name] * (4 if name.startswith("light-packed") else 16 // element_bytes)
    return 1024 if share <= 16 else 768


def light_cap(name, element_bytes):
    """Registers per thread at a light variant's launch bound: 64 at 1024 threads, 85 at 768."""
    return 64 if max_threads(name, element_bytes) == 1024 else 85
# Static shared memory of the kernels (kernels.cuh): the on-chip kernel's exchange of moments (2 x 16 x 12 bytes) and
# per-warp counts (16 x 4); the streaming kernel's 32 floats of block-sum scratch.
ON_CHIP_STATIC_SHARED = 448
STREAMING_STATIC_SHARED = 128
LIGHT_STATIC_SHARED = 384  # the light kernel's exchange of moments, 32 x 12 bytes
ELEMENT_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
OPERANDS = {  # op -> (skip, bias, rms)
    "LayerNorm": (False, False, False),
    "RMSNorm": (False, False, True),
    "SkipLayerNorm": (True, True, False),
    "SkipLayerNorm-nobias": (True, False, False),
}

# Published per-architecture limits (CUDA C++ Programming Guide, "Compute Capabilities"), with the multiprocessor
# count of one representative GPU. Shared memory: per multiprocessor, the most one block may opt in to, and what the
# driver reserves per block.
ARCHITECTURES = {
    "sm_75": dict(gpu="Tesla T4", major=7, minor=5, sms=40, threads=1024, smem=64 << 10, optin=64 << 10, reserved=0),
    "sm_80": dict(gpu="A100", major=8, minor=0, sms=108, threads=2048, smem=164 << 10, optin=163 << 10, reserved=1024),
    "sm_86": dict(gpu="A10", major=8, minor=6, sms=72, threads=1536, smem=100 << 10, optin=99 << 10, reserved=1024),
    "sm_89": dict(gpu="L4", major=8, minor=9, sms=58, threads=1536, smem=100 << 10, optin=99 << 10, reserved=1024),
    "sm_90": dict(gpu="H200", major=9, minor=0, sms=132, threads=2048, smem=228 << 10, optin=227 << 10, reserved=1024),
    "sm_100": dict(gpu="B200", major=10, minor=0, sms=148, threads=2048, smem=228 << 10, optin=227 << 10,
                   reserved=1024),
    "sm_120": dict(gpu="RTX 5090", major=12, minor=0, sms=170, threads=1536, smem=100 << 10, optin=99 << 10,
                   reserved=1024),
}


class KernelResources(ctypes.Structure):
    _fields_ = [("registers", ctypes.c_int32), ("staticSharedBytes", ctypes.c_int32)]


class DeviceLimits(ctypes.Structure):
    _fields_ = [
        ("computeMajor", ctypes.c_int32),
        ("computeMinor", ctypes.c_int32),
        ("multiprocessors", ctypes.c_int32),
        ("threadsPerMultiprocessor", ctypes.c_int32),
        ("registersPerMultiprocessor", ctypes.c_int32),
        ("registersPerBlock", ctypes.c_int32),
        ("sharedBytesPerMultiprocessor", ctypes.c_int64),
        ("sharedBytesPerBlockOptin", ctypes.c_int64),
        ("reservedSharedBytesPerBlock", ctypes.c_int64),
        ("kernels", KernelResources * len(VARIANTS)),
    ]


class RowNormProblem(ctypes.Structure):
    _fields_ = [
        ("rows", ctypes.c_int64),
        ("cols", ctypes.c_int64),
        ("elementBytes", ctypes.c_int32),
        ("vectorizable", ctypes.c_bool),
        ("skip", ctypes.c_bool),
        ("bias", ctypes.c_bool),
        ("rms", ctypes.c_bool),
    ]


class RowNormPlan(ctypes.Structure):
    _fields_ = [
        ("variant", ctypes.c_int32),
        ("vec", ctypes.c_int32),
        ("items", ctypes.c_int32),
        ("threads", ctypes.c_int32),
        ("lanesPerRow", ctypes.c_int32),
        ("rowsPerBlock", ctypes.c_int32),
        ("blocksPerMultiprocessor", ctypes.c_int32),
        ("persistent", ctypes.c_bool),
        ("grid", ctypes.c_int64),
        ("sharedBytes", ctypes.c_int64),
        ("rule", ctypes.c_char_p),
    ]


def built_variants(element_bytes, skip, bias=None, tuning=False):
    """The variants launch.cuh instantiates for these activations and operands (kernelOf's rules): light ones where
    the plan can pick them, or, in a tuning build (-DPOLYGRAPHY_EXT_TUNING=ON), wherever they exist. `bias` defaults
    to `skip` (SkipLayerNorm's usual operands)."""
    bias = skip if bias is None else bias
    sixteen_bit = element_bytes == 2
    built = set(VARIANTS) - PACKED - STAGED - LIGHT
    if sixteen_bit:
        built |= STAGED if skip else PACKED
    light = {
        "light-2": tuning or skip or not sixteen_bit,
        "light-3": tuning or (skip and sixteen_bit),
        "light-4": tuning or skip,
        "light-8": not sixteen_bit and (tuning or bias),  # 64 fp32 values of a 16-bit row: more than 85 registers
        "light-packed-3": not skip and (tuning or sixteen_bit),
        "light-packed-4": not skip,
        "light-packed-8": not skip,
    }
    return built | {name for name, is_built in light.items() if is_built}


def device_limits(arch, element_bytes, skip, registers=None, bias=None, tuning=False):
    """DeviceLimits of `arch` (a key of ARCHITECTURES) with modelled kernel resources of the variants built for the
    operands (built_variants): `registers` maps a variant name to its registers per thread (0: not built); the others
    take their launch bound's cap (128; light variants 64 or 85)."""
    spec = ARCHITECTURES[arch]
    limits = DeviceLimits(
        computeMajor=spec["major"], computeMinor=spec["minor"], multiprocessors=spec["sms"],
        threadsPerMultiprocessor=spec["threads"], registersPerMultiprocessor=65536, registersPerBlock=65536,
        sharedBytesPerMultiprocessor=spec["smem"], sharedBytesPerBlockOptin=spec["optin"],
        reservedSharedBytesPerBlock=spec["reserved"],
    )
    built = built_variants(element_bytes, skip, bias, tuning)
    for i, name in enumerate(VARIANTS):
        if name in built:
            regs = (registers or {}).get(name, light_cap(name, element_bytes) if name in LIGHT else 128)
            shared = (STREAMING_STATIC_SHARED if name == "streaming"
                      else LIGHT_STATIC_SHARED if name in LIGHT else ON_CHIP_STATIC_SHARED)
            limits.kernels[i] = KernelResources(regs, shared)
    return limits


class Planner:
    """planRowNorm through the harness shim (compiled on first use into `build_dir`)."""

    def __init__(self, build_dir=None):
        shim = build_shim(Path(build_dir or tempfile.mkdtemp(prefix="pgx-plan-")))
        self._lib = ctypes.CDLL(str(shim))
        self._lib.pgx_plan_row_norm.argtypes = [ctypes.POINTER(RowNormProblem), ctypes.POINTER(DeviceLimits),
                                                ctypes.POINTER(RowNormPlan)]
        self._lib.pgx_plan_row_norm.restype = None
        self._lib.pgx_plan_row_norm_as.argtypes = [ctypes.POINTER(RowNormProblem), ctypes.POINTER(DeviceLimits),
                                                   ctypes.c_int, ctypes.POINTER(RowNormPlan)]
        self._lib.pgx_plan_row_norm_as.restype = None
        self._lib.pgx_row_norm_variant_name.argtypes = [ctypes.c_int]
        self._lib.pgx_row_norm_variant_name.restype = ctypes.c_char_p

    def variant_name(self, index) -> str:
        return self._lib.pgx_row_norm_variant_name(index).decode()

    def plan(self, rows, cols, element_bytes, skip=False, bias=False, vectorizable=True, limits=None, arch="sm_90",
             registers=None, rms=False, variant=None, tuning=False) -> dict:
        """The plan as a dict (variant by name). `vectorizable`: every pointer 16-byte aligned; it is cleared here
        when cols * element_bytes is not a multiple of 16, as the launcher does. `variant`: a light variant asked for
        (planRowNormAs, as a tuning build launches it); `tuning`: model a tuning build's kernels (every light variant
        built for the operands it can run)."""
        if limits is None:
            limits = device_limits(arch, element_bytes, skip, registers, bias, tuning)
        problem = RowNormProblem(rows, cols, element_bytes, bool(vectorizable and cols * element_bytes % 16 == 0),
                                 skip, bias, rms)
        plan = RowNormPlan()
        if variant is None:
            self._lib.pgx_plan_row_norm(ctypes.byref(problem), ctypes.byref(limits), ctypes.byref(plan))
        else:
            self._lib.pgx_plan_row_norm_as(ctypes.byref(problem), ctypes.byref(limits), VARIANTS.index(variant),
                                           ctypes.byref(plan))
        result = {name: getattr(plan, name) for name, _ in RowNormPlan._fields_}
        result["variant"] = self.variant_name(plan.variant)
        result["rule"] = plan.rule.decode() if plan.rule else ""
        return result


HIDDEN = (256, 512, 640, 768, 1024, 2048, 4096, 5120, 8192, 12288, 16384, 32768)


def table(planner, archs, ops, dtypes, hidden, rows_list, registers=None):
    lines = ["| arch | op | dtype | H | rows | variant | vec x items | threads | lanes/row | blocks/SM | grid | "
             "persistent | shared | rule |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for arch in archs:
        for op in ops:
            skip, bias, rms = OPERANDS[op]
            for dtype in dtypes:
                for h in hidden:
                    for rows in rows_list:
                        p = planner.plan(rows, h, ELEMENT_BYTES[dtype], skip, bias, arch=arch, registers=registers,
                                         rms=rms)
                        lines.append(
                            f"| {arch} | {op} | {dtype} | {h} | {rows} | {p['variant']} | {p['vec']} x {p['items']} | "
                            f"{p['threads']} | {p['lanesPerRow']} | {p['blocksPerMultiprocessor']} | {p['grid']} | "
                            f"{'yes' if p['persistent'] else 'no'} | {p['sharedBytes']} | {p['rule']} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    parser.add_argument("--op", nargs="+", default=["LayerNorm", "RMSNorm", "SkipLayerNorm"], choices=list(OPERANDS))
    parser.add_argument("--dtype", nargs="+", default=list(ELEMENT_BYTES), choices=list(ELEMENT_BYTES))
    parser.add_argument("--hidden", nargs="+", type=int, default=list(HIDDEN))
    parser.add_argument("--rows", nargs="+", type=int, default=[64, 1 << 16])
    parser.add_argument("--registers", nargs="+", metavar="[VARIANT=]N",
                        help="registers per thread: N for every kernel, VARIANT=N for one (default: each launch "
                             "bound's cap, e.g. light-packed-8=80 as ptxas gives it on sm_90)")
    args = parser.parse_args(argv)
    registers = None
    for spec in args.registers or []:
        name, _, count = spec.rpartition("=")
        if name and name not in VARIANTS or not count.isdigit():
            parser.error(f"--registers {spec}: expected N or VARIANT=N with VARIANT one of {', '.join(VARIANTS)}")
        registers = registers or {}
        registers.update({name: int(count)} if name else {variant: int(count) for variant in VARIANTS})
    print(table(Planner(), args.arch, args.op, args.dtype, args.hidden, args.rows, registers))


if __name__ == "__main__":
    main()

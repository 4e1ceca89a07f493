"""A few plugin runs covering every kernel path, small enough to run under compute-sanitizer (memcheck, racecheck).

    compute-sanitizer --tool memcheck python3 trt_plugins/tools/sanitize_cases.py LIBRARY
Exits non-zero if any output differs from the float64 reference.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "plugins"))
from plugin_cases import PLUGINS, Case, make_tensors, reference, tolerance  # noqa: E402
from plugin_harness import PluginHarness  # noqa: E402


def cases():
    for plugin in PLUGINS:
        yield Case(plugin, 5, 100, torch.float16)  # scalar path, several rows per warp
        yield Case(plugin, 5, 255, torch.float16)  # scalar path, a block per row
        yield Case(plugin, 37, 256, torch.float16)  # vectorized, several rows per warp, a partial last block
        # LayerNorm/RMSNorm loaded a row ahead, 4 and 3 vectors per thread, with more rows than an H200's wave
        yield Case(plugin, 9000, 256, torch.float16)
        yield Case(plugin, 9000, 768, torch.bfloat16)
        yield Case(plugin, 9, 1024, torch.float16, offsets={"input": 1})  # misaligned: scalar fallback
        yield Case(plugin, 6, 4096, torch.bfloat16, param_dtype=torch.float32)  # block per row, vectorized
        yield Case(plugin, 5, 12288, torch.float16)  # block per row, 3 vectors per thread (5 rows: held as fp32)
        yield Case(plugin, 3, 32768, torch.bfloat16)  # LayerNorm/RMSNorm: the longest row held packed on chip
        # LayerNorm/RMSNorm held packed (enough rows to fill an H200's wave): loaded ahead, 32 lanes per row; a block
        # per row, 8 vectors per thread (bf16 at 111 registers: 18 warps per SM, 6 vectors would give 16)
        yield Case(plugin, 4096, 1024, torch.float16)
        yield Case(plugin, 264, 12288, torch.bfloat16)
        yield Case(plugin, 1000, 5120, torch.float16)  # held packed, 5 vectors per thread: 128 lanes, whole warps
        yield Case(plugin, 3, 65536, torch.float32)  # streaming path
        yield Case(plugin, 3, 6145, torch.float16)  # scalar streaming path
        yield Case(plugin, 0, 768, torch.float32)  # empty
    # SkipLayerNorm without bias and sum (compile-time operand policies), staged through shared memory (16-bit rows
    # whose block is alone on its SM: H=12288 at 3 vectors per thread, 16384 at 4) over more rows than one wave
    for hidden in (12288, 16384):
        yield Case("SkipLayerNorm", 300, hidden, torch.float16, bias=False, output_sum=False)
    yield Case("SkipLayerNorm", 300, 12288, torch.bfloat16, bias=True, output_sum=True)
    yield Case("SkipLayerNorm", 37, 768, torch.float32, bias=False, output_sum=True)
    # RMSNorm rows held packed on one block per row group (not persistent): 8 vectors per thread, 32 and 64 lanes
    yield Case("RMSNorm", 2000, 2048, torch.float16)
    yield Case("RMSNorm", 2000, 4096, torch.bfloat16)


def main():
    harness = PluginHarness(sys.argv[1], build_dir=Path(sys.argv[2]) if len(sys.argv) > 2 else None)
    failures = 0
    for case in cases():
        inputs, outputs = make_tensors(case)
        harness.run(case.plugin, case.fields(), inputs, outputs)
        torch.cuda.synchronize()
        atol, rtol = tolerance(case.dtype)
        for got, want in zip(outputs, reference(case, inputs)):
            if not torch.allclose(got.double(), want, atol=atol, rtol=rtol):
                failures += 1
                print("MISMATCH", case)
    print(f"sanitize_cases: {failures} mismatches")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

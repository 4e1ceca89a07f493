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
        # More rows than an H200's wave: LayerNorm/RMSNorm held light, 4 packed vectors per thread (256), 8
        # (LayerNorm 768) and 3 (RMSNorm 768); SkipLayerNorm light at 2 (256) and 3 (768) vectors
        yield Case(plugin, 9000, 256, torch.float16)
        yield Case(plugin, 9000, 768, torch.bfloat16)
        # Fewer rows than a wave: LayerNorm/RMSNorm loaded a row ahead, 4 vectors per thread
        yield Case(plugin, 300, 1024, torch.float16)
        yield Case(plugin, 9, 1024, torch.float16, offsets={"input": 1})  # misaligned: scalar fallback
        yield Case(plugin, 6, 4096, torch.bfloat16, param_dtype=torch.float32)  # block per row, vectorized
        yield Case(plugin, 5, 12288, torch.float16)  # block per row, 3 vectors per thread (5 rows: held as fp32)
        yield Case(plugin, 3, 32768, torch.bfloat16)  # LayerNorm/RMSNorm: the longest row held packed on chip
        # LayerNorm/RMSNorm light at 8 packed vectors per thread: 16 lanes per row (1024), 192 threads (12288), 80
        # lanes in a block row of 96 (5120); SkipLayerNorm 16-bit staged (12288, a block alone on its SM)
        yield Case(plugin, 4096, 1024, torch.float16)
        yield Case(plugin, 264, 12288, torch.bfloat16)
        yield Case(plugin, 1000, 5120, torch.float16)
        yield Case(plugin, 3, 65536, torch.float32)  # streaming path
        yield Case(plugin, 3, 6145, torch.float16)  # scalar streaming path
        yield Case(plugin, 0, 768, torch.float32)  # empty
    # SkipLayerNorm without bias and sum (compile-time operand policies), staged through shared memory (16-bit rows
    # whose block is alone on its SM: H=12288 at 3 vectors per thread, 16384 at 4) over more rows than one wave
    for hidden in (12288, 16384):
        yield Case("SkipLayerNorm", 300, hidden, torch.float16, bias=False, output_sum=False)
    yield Case("SkipLayerNorm", 300, 12288, torch.bfloat16, bias=True, output_sum=True)
    yield Case("SkipLayerNorm", 37, 768, torch.float32, bias=False, output_sum=True)
    # RMSNorm rows held packed on one block per row group (not persistent): 8 vectors per thread, 64 lanes
    yield Case("RMSNorm", 2000, 4096, torch.bfloat16)
    # Rows held light (one row group per block, more rows than one wave of the on-chip kernel): every light variant
    for plugin in ("LayerNorm", "RMSNorm"):
        yield Case(plugin, 20000, 256, torch.float32)  # 2 vectors per thread, lane groups
        yield Case(plugin, 20000, 768, torch.float32)  # 4 packed, a block row with idle lanes
        yield Case(plugin, 2000, 12288, torch.float32)  # 8 packed, 384 threads
        yield Case(plugin, 9000, 2048, torch.float16)  # LayerNorm 8 packed, RMSNorm 4 packed
    for bias, output_sum in ((False, False), (True, True)):
        yield Case("SkipLayerNorm", 20000, 256, torch.float32, bias=bias, output_sum=output_sum)  # 2 vectors
        yield Case("SkipLayerNorm", 2000, 8192, torch.float32, bias=bias, output_sum=output_sum)  # 4 vectors
        yield Case("SkipLayerNorm", 20000, 640, torch.float16, bias=bias, output_sum=output_sum)  # 4 vectors, 16-bit
    yield Case("SkipLayerNorm", 2000, 12288, torch.float32)  # 8 vectors (with bias)


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

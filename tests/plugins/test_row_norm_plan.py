"""The row-norm launch plan (trt_plugins/plugins/row_norm/plan.cpp), checked on CPU for every architecture's limits.

planRowNorm is pure: these tests call the library's own planning code (compiled into the harness shim) with the
published limits of sm_75..sm_120 and check that every plan is one the launcher can run (geometry, grid, shared
memory, a variant instantiated for the operands) and that the measured choices hold where they were measured.
"""

import math
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "trt_plugins" / "tools"))

ARCHS = ("sm_75", "sm_80", "sm_86", "sm_89", "sm_90", "sm_100", "sm_120")
HIDDEN = (1, 3, 8, 64, 255, 256, 320, 640, 768, 1000, 1024, 2048, 4096, 5120, 6143, 6144, 6145, 8192, 12288, 16384,
          16392, 32768, 32776, 65536)
ROWS = (1, 64, 4096, 1 << 20)
OPERANDS = {"x": (False, False), "skip+bias": (True, True), "skip": (True, False)}


@pytest.fixture(scope="module")
def planner(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("no g++ to build the harness shim")
    from plugin_harness import PluginError
    from row_norm_plan import Planner

    try:
        return Planner(tmp_path_factory.mktemp("plan"))
    except PluginError as err:
        pytest.skip(f"cannot build the harness shim: {err}")


def expected_vec(cols, element_bytes, vectorizable=True):
    return 16 // element_bytes if vectorizable and cols * element_bytes % 16 == 0 else 1


def check_launchable(plan, rows, cols, element_bytes, skip, bias, arch):
    from row_norm_plan import ARCHITECTURES, LIGHT, ON_CHIP_STATIC_SHARED, built_variants, max_threads

    where = f"{arch} rows={rows} cols={cols} bytes={element_bytes} skip={skip}: {plan}"
    assert plan["variant"] in built_variants(element_bytes, skip, bias), where
    vec = plan["vec"]
    assert cols % vec == 0, where
    threads, lanes = plan["threads"], plan["lanesPerRow"]
    assert threads % 32 == 0 and 32 <= threads <= max_threads(plan["variant"], element_bytes), where
    if plan["variant"] in LIGHT:
        # one row group per block, and at least two such blocks resident per multiprocessor
        assert not plan["persistent"] and vec > 1 and plan["blocksPerMultiprocessor"] >= 2, where
    if lanes <= 32:
        assert lanes & (lanes - 1) == 0 and threads == 128 and plan["rowsPerBlock"] == 128 // lanes, where
    else:
        assert lanes == threads and plan["rowsPerBlock"] == 1, where
    if plan["variant"] != "streaming":
        vectors = cols // vec
        lanes_needed = math.ceil(vectors / plan["items"])
        # the row is on chip, in as few threads as the lane group or whole warps allow
        assert lanes_needed <= lanes, where
        assert lanes == (1 << max(lanes_needed - 1, 0).bit_length() if lanes_needed <= 32 else -(-lanes_needed // 32) * 32), where
    assert plan["blocksPerMultiprocessor"] >= 1, where
    blocks_needed = -(-rows // plan["rowsPerBlock"])
    if plan["persistent"]:
        assert 1 <= plan["grid"] <= min(blocks_needed, ARCHITECTURES[arch]["sms"] * plan["blocksPerMultiprocessor"]), where
    else:
        assert plan["grid"] == blocks_needed, where
    if plan["variant"].startswith("staged"):
        assert skip and plan["persistent"] and plan["sharedBytes"] > 0, where
        assert plan["sharedBytes"] + ON_CHIP_STATIC_SHARED <= ARCHITECTURES[arch]["optin"], where
    else:
        assert plan["sharedBytes"] == 0, where


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("element_bytes", [4, 2], ids=["fp32", "16-bit"])
def test_every_plan_is_one_the_launcher_can_run(planner, arch, element_bytes):
    for name, (skip, bias) in OPERANDS.items():
        for cols in HIDDEN:
            for rows in ROWS:
                for vectorizable in (True, False):
                    plan = planner.plan(rows, cols, element_bytes, skip, bias, vectorizable, arch=arch)
                    assert plan["vec"] == expected_vec(cols, element_bytes, vectorizable), (name, cols, plan)
                    check_launchable(plan, rows, cols, element_bytes, skip, bias, arch)


@pytest.mark.parametrize("arch", ARCHS)
def test_rows_stream_exactly_when_they_do_not_fit_on_chip(planner, arch):
    # On chip: 512 threads x 32 values held as fp32, 64 held packed (16-bit x alone), 12 on the 1-element path.
    for element_bytes, skip, limit in ((4, False, 16384), (2, True, 16384), (2, False, 32768)):
        vec = 16 // element_bytes
        assert planner.plan(1 << 16, limit, element_bytes, skip, skip, arch=arch)["variant"] != "streaming"
        assert planner.plan(1 << 16, limit + vec, element_bytes, skip, skip, arch=arch)["variant"] == "streaming"
    assert planner.plan(1 << 16, 6143, 2, arch=arch)["variant"] == "scalar-held"
    assert planner.plan(1 << 16, 6145, 2, arch=arch)["variant"] == "streaming"


def test_empty_problems_launch_nothing(planner):
    assert planner.plan(0, 768, 2)["grid"] == 0
    assert planner.plan(7, 0, 4)["grid"] == 0


MANY = 1 << 20
# Registers 0 mark a variant as not built: the plans the on-chip kernels give without the light ones.
NO_LIGHT = {"light-2": 0, "light-3": 0, "light-4": 0, "light-8": 0, "light-packed-3": 0, "light-packed-4": 0,
            "light-packed-8": 0}
LN, RMS, SKIP = "LayerNorm", "RMSNorm", "SkipLayerNorm"


def plan_for(planner, op, rows, cols, element_bytes, **kwargs):
    skip = op == SKIP
    return planner.plan(rows, cols, element_bytes, skip, skip, rms=op == RMS, **kwargs)


# The light variants measured fastest on an H200 (plan.cpp's lightChoice), at the sm_90 model's registers (the launch
# bounds' caps: 64, or 85 at 768 threads).
MEASURED_LIGHT = {
    (LN, 2): {256: "light-packed-4", 384: "light-packed-4", 512: "light-packed-4", 640: "light-packed-8",
              768: "light-packed-8", 1024: "light-packed-8", 2048: "light-packed-8", 4096: "light-packed-8",
              5120: "light-packed-8", 8192: "light-packed-8", 12288: "light-packed-8", 16384: "light-packed-8",
              32768: "packed"},
    (RMS, 2): {256: "light-packed-4", 384: "light-packed-3", 768: "light-packed-3", 1536: "light-packed-4",
               2048: "light-packed-4", 4096: "packed",
               5120: "light-packed-8", 8192: "packed", 12288: "light-packed-8", 16384: "light-packed-8"},
    (LN, 4): {256: "light-2", 512: "light-packed-4", 768: "light-packed-4", 1024: "light-packed-4", 2048: "held",
              4096: "held", 5120: "light-packed-8", 8192: "light-packed-8", 16384: "held"},
    (SKIP, 4): {256: "light-2", 1024: "light-2", 4096: "light-2", 5120: "light-4", 8192: "light-4", 16384: "held"},
    (SKIP, 2): {256: "light-2", 384: "light-3", 512: "light-2", 768: "light-3", 1024: "light-2", 4096: "light-2",
                8192: "light-2", 640: "light-4",
                16384: "staged"},
}


@pytest.mark.parametrize("op, element_bytes", list(MEASURED_LIGHT), ids=lambda v: str(v))
def test_rows_filling_the_gpu_take_the_measured_variants_on_sm_90(planner, op, element_bytes):
    for cols, variant in MEASURED_LIGHT[(op, element_bytes)].items():
        plan = plan_for(planner, op, MANY, cols, element_bytes)
        assert plan["variant"] == variant, (op, element_bytes, cols, plan)
        if variant.startswith("light"):
            assert not plan["persistent"] and plan["blocksPerMultiprocessor"] >= 2, (op, cols, plan)


def test_light_rows_need_two_resident_blocks(planner):
    # fp32 LayerNorm H=12288, 8 packed vectors per thread: 384 threads. At 85 registers one block fits (on chip it
    # stays); at the 80 ptxas gives on sm_90 two do, and the row is held light.
    assert plan_for(planner, LN, MANY, 12288, 4)["variant"] == "held-fewer"
    assert plan_for(planner, LN, MANY, 12288, 4, registers={"light-packed-8": 80})["variant"] == "light-packed-8"
    # SkipLayerNorm fp32 H=12288 takes 8 vectors with bias only (without, ptxas spills at 85 registers).
    regs = {"light-8": 80}
    assert planner.plan(MANY, 12288, 4, True, True, registers=regs)["variant"] == "light-8"
    assert planner.plan(MANY, 12288, 4, True, False, registers=regs)["variant"] == "held-fewer"


def test_light_rows_need_a_block_per_row_group_in_the_grid(planner):
    # Light blocks do not loop over rows: a launch needing more blocks than a grid holds stays on chip (persistent).
    assert plan_for(planner, LN, (1 << 31) - 1, 4096, 2)["variant"] == "light-packed-8"
    plan = plan_for(planner, LN, 1 << 31, 4096, 2)
    assert not plan["variant"].startswith("light") and plan["persistent"]


def test_launches_too_small_to_fill_the_gpu_keep_rows_held_as_fp32(planner):
    # Light and packed rows have fewer threads each: worth it only when the rows fill a resident wave of fp32-held
    # ones; smaller launches are latency-bound.
    assert plan_for(planner, LN, 64, 4096, 2)["variant"] == "held"
    # The threshold is one resident wave: it moves with the multiprocessor count.
    wave_sm90 = 132 * plan_for(planner, LN, 64, 4096, 2)["blocksPerMultiprocessor"]
    assert plan_for(planner, LN, wave_sm90, 4096, 2)["variant"] == "held"
    assert plan_for(planner, LN, wave_sm90 + 1, 4096, 2)["variant"] == "light-packed-8"
    assert plan_for(planner, LN, wave_sm90 + 1, 4096, 2, arch="sm_100")["variant"] == "held"
    # Without the light variants, the on-chip kernel holds such rows packed.
    assert plan_for(planner, LN, wave_sm90 + 1, 4096, 2, registers=NO_LIGHT)["variant"] == "packed"


@pytest.mark.parametrize("cols, variant", [(256, "ahead"), (512, "ahead"), (768, "ahead-fewer"), (1024, "ahead"),
                                           (640, "packed"), (2048, "packed"), (5120, "packed-warp-filling"),
                                           (8192, "packed"), (16384, "packed"), (32768, "packed")])
def test_16_bit_rows_of_x_alone_on_chip_take_the_measured_variants_on_sm_90(planner, cols, variant):
    plan = planner.plan(MANY, cols, 2, registers=NO_LIGHT)
    assert plan["variant"] == variant and plan["persistent"] == (cols != 2048)
    # Launches smaller than a wave are never held light: rows of up to 1024 are still loaded a row ahead.
    if variant.startswith("ahead"):
        assert planner.plan(300, cols, 2)["variant"] == variant


def test_block_rows_take_three_quarters_of_the_vectors_only_for_four_thirds_the_warps(planner):
    # fp32 H=12288: 8 vectors per thread need 384 threads (one block of 12 warps per SM at 128 registers); 6 need 512
    # (16 warps): 4/3 more, taken. H=8192: 256 threads (2 blocks, 16 warps) against 352 (1 block, 11): kept.
    assert planner.plan(MANY, 12288, 4, registers=NO_LIGHT)["variant"] == "held-fewer"
    assert planner.plan(MANY, 8192, 4, registers=NO_LIGHT)["variant"] == "held"
    # With fewer registers two 384-thread blocks fit: 24 warps, and 3/4 of the vectors no longer pays.
    regs = dict(NO_LIGHT, **{"held": 80, "held-fewer": 80})
    assert planner.plan(MANY, 12288, 4, registers=regs)["variant"] == "held"


def test_16_bit_rows_with_skip_are_staged_only_when_alone_on_the_sm_and_the_shared_memory_fits(planner):
    # sm_90: 227 KiB per block; H=16384 needs 4 vectors x 2 rows x 2 streams x 16 B x 512 threads = 128 KiB.
    assert planner.plan(MANY, 16384, 2, True, True, arch="sm_90")["variant"] == "staged"
    assert planner.plan(MANY, 12288, 2, True, True, arch="sm_90")["variant"] == "staged-fewer"
    # sm_89: 99 KiB per block: 96 KiB (H=12288 at 3 vectors per thread) fits, 128 KiB does not.
    assert planner.plan(MANY, 12288, 2, True, True, arch="sm_89")["variant"] == "staged-fewer"
    assert planner.plan(MANY, 16384, 2, True, True, arch="sm_89")["variant"] == "held"
    # sm_75: 64 KiB: never.
    for cols in (12288, 16384):
        assert not planner.plan(MANY, cols, 2, True, True, arch="sm_75")["variant"].startswith("staged")
    # Blocks that share their SM are not staged; fp32 rows never are.
    assert planner.plan(MANY, 4096, 2, True, True, registers=NO_LIGHT)["variant"] == "held"
    assert planner.plan(MANY, 16384, 4, True, True)["variant"] == "held"


def test_block_per_row_group_grids_where_they_were_measured_faster(planner):
    # 16-bit rows held packed on chip: RMSNorm H=2048..8192, LayerNorm H=2048 only (measured per H on an H200).
    for cols, rms, persistent in ((2048, False, False), (4096, False, True), (2048, True, False), (8192, True, False),
                                  (16384, True, True), (5120, True, True), (1024, True, True)):
        plan = planner.plan(MANY, cols, 2, rms=rms, registers=NO_LIGHT)
        assert plan["persistent"] == persistent, (cols, rms, plan)
    # Vectorized fp32 rows up to H=5120, and 16-bit rows with skip that fill a lane group, run one block per row group.
    for cols in (256, 1024, 5120):
        assert not planner.plan(MANY, cols, 4, registers=NO_LIGHT)["persistent"]
    assert planner.plan(MANY, 8192, 4, registers=NO_LIGHT)["persistent"]
    for cols in (256, 512, 1024):
        assert not planner.plan(MANY, cols, 2, True, True, registers=NO_LIGHT)["persistent"]
    assert planner.plan(MANY, 768, 2, True, True, registers=NO_LIGHT)["persistent"]
    assert planner.plan(MANY, 1024, 4, vectorizable=False)["persistent"]


def test_misaligned_rows_take_one_element_per_access(planner):
    plan = planner.plan(MANY, 1024, 2, vectorizable=False)
    assert (plan["variant"], plan["vec"], plan["items"]) == ("scalar-held", 1, 12)
    assert planner.plan(MANY, 1028, 2)["vec"] == 1  # 2056 bytes per row: rows are not 16-byte aligned


def test_plan_table_tool_prints_every_architecture(planner, capsys):
    from row_norm_plan import ARCHITECTURES, main

    main(["--op", "SkipLayerNorm", "--dtype", "fp16", "--hidden", "640", "16384", "--rows", "1000"])
    out = capsys.readouterr().out
    for arch in ARCHITECTURES:
        assert f"| {arch} | SkipLayerNorm | fp16 | 16384 | 1000 |" in out
    assert "| sm_90 | SkipLayerNorm | fp16 | 16384 | 1000 | staged |" in out
    assert "| sm_75 | SkipLayerNorm | fp16 | 16384 | 1000 | held |" in out


def test_variant_table_keeps_only_variants_that_held_the_row(planner, tmp_path):
    import json

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from variant_table import table

    def row(plugin, dtype, hidden, of_copy):
        return dict(plugin=plugin, dtype=dtype, hidden=hidden, of_copy=of_copy)

    # fp32 LayerNorm H=16384: light-packed-8 would need 512 threads of 768 allowed, light-2 2048 of 1024 (it fell back).
    report = {"large": [row("LayerNorm", "fp32", 16384, {"ours": 0.90, "ours@light-2": 0.90, "ours@light-packed-8": 0.78,
                                                          "eager": 0.5}),
                        row("SkipLayerNorm", "fp16", 256, {"ours": 0.94, "ours@light-2": 0.97, "compile": 0.95})]}
    again = {"large": [row("SkipLayerNorm", "fp16", 256, {"ours": 0.95, "ours@light-2": 0.99, "compile": 0.93})]}
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(report))
    second.write_text(json.dumps({"runs": [again]}))
    lines = table([first, second]).splitlines()
    assert lines[2] == "| LayerNorm | fp32 | 16384 | ours 0.900 (1), light-packed-8 0.780 (1) |"
    assert lines[3] == "| SkipLayerNorm | fp16 | 256 | light-2 0.980 (2), ours 0.945 (2), compile 0.940 (2) |"


def test_plan_table_tool_takes_registers_per_variant(planner, capsys):
    from row_norm_plan import main

    args = ["--arch", "sm_90", "--op", "LayerNorm", "--dtype", "fp32", "--hidden", "12288", "--rows", "100000"]
    main(args)
    assert "| 12288 | 100000 | held-fewer |" in capsys.readouterr().out
    main(args + ["--registers", "light-packed-8=80"])  # what ptxas gives it on sm_90: two blocks per SM
    assert "| 12288 | 100000 | light-packed-8 |" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(args + ["--registers", "lite-8=80"])
    assert exit_info.value.code == 2 and "expected N or VARIANT=N" in capsys.readouterr().err

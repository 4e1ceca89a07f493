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


def check_launchable(plan, rows, cols, element_bytes, skip, arch):
    from row_norm_plan import ARCHITECTURES, ON_CHIP_STATIC_SHARED, built_variants

    where = f"{arch} rows={rows} cols={cols} bytes={element_bytes} skip={skip}: {plan}"
    assert plan["variant"] in built_variants(element_bytes, skip), where
    vec = plan["vec"]
    assert cols % vec == 0, where
    threads, lanes = plan["threads"], plan["lanesPerRow"]
    assert threads % 32 == 0 and 32 <= threads <= 512, where
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
                    check_launchable(plan, rows, cols, element_bytes, skip, arch)


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


@pytest.mark.parametrize("cols, variant", [(256, "ahead"), (512, "ahead"), (768, "ahead-fewer"), (1024, "ahead"),
                                           (640, "packed"), (2048, "packed"), (5120, "packed-warp-filling"),
                                           (8192, "packed"), (16384, "packed"), (32768, "packed")])
def test_16_bit_rows_of_x_alone_take_the_measured_variants_on_sm_90(planner, cols, variant):
    plan = planner.plan(MANY, cols, 2)
    assert plan["variant"] == variant and plan["persistent"] == (cols != 2048)


def test_launches_too_small_to_fill_the_gpu_keep_rows_held_as_fp32(planner):
    # Packed rows have half the threads each: worth it only when the rows fill a resident wave of fp32-held ones.
    assert planner.plan(64, 4096, 2)["variant"] == "held"
    assert planner.plan(MANY, 4096, 2)["variant"] == "packed"
    # The threshold is one resident wave: it moves with the multiprocessor count.
    wave_sm90 = 132 * planner.plan(64, 4096, 2)["blocksPerMultiprocessor"]
    assert planner.plan(wave_sm90, 4096, 2)["variant"] == "held"
    assert planner.plan(wave_sm90 + 1, 4096, 2)["variant"] == "packed"
    assert planner.plan(wave_sm90 + 1, 4096, 2, arch="sm_100")["variant"] == "held"


def test_block_rows_take_three_quarters_of_the_vectors_only_for_four_thirds_the_warps(planner):
    # fp32 H=12288: 8 vectors per thread need 384 threads (one block of 12 warps per SM at 128 registers); 6 need 512
    # (16 warps): 4/3 more, taken. H=8192: 256 threads (2 blocks, 16 warps) against 352 (1 block, 11): kept.
    assert planner.plan(MANY, 12288, 4)["variant"] == "held-fewer"
    assert planner.plan(MANY, 8192, 4)["variant"] == "held"
    # With fewer registers two 384-thread blocks fit: 24 warps, and 3/4 of the vectors no longer pays.
    assert planner.plan(MANY, 12288, 4, registers={"held": 80, "held-fewer": 80})["variant"] == "held"


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
    assert planner.plan(MANY, 4096, 2, True, True)["variant"] == "held"
    assert planner.plan(MANY, 16384, 4, True, True)["variant"] == "held"


def test_block_per_row_group_grids_where_they_were_measured_faster(planner):
    # 16-bit rows held packed: RMSNorm H=2048..8192, LayerNorm H=2048 only (measured per H on an H200).
    for cols, rms, persistent in ((2048, False, False), (4096, False, True), (2048, True, False), (8192, True, False),
                                  (16384, True, True), (5120, True, True), (1024, True, True)):
        plan = planner.plan(MANY, cols, 2, rms=rms)
        assert plan["persistent"] == persistent, (cols, rms, plan)
    # Vectorized fp32 rows up to H=5120, and 16-bit rows with skip that fill a lane group, run one block per row group.
    for cols in (256, 1024, 5120):
        assert not planner.plan(MANY, cols, 4)["persistent"]
    assert planner.plan(MANY, 8192, 4)["persistent"]
    for cols in (256, 512, 1024):
        assert not planner.plan(MANY, cols, 2, True, True)["persistent"]
    assert planner.plan(MANY, 768, 2, True, True)["persistent"]
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

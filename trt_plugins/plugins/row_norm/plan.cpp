#include "plugins/row_norm/plan.h"

// The toolkit's header-only occupancy calculator: the same arithmetic as cudaOccupancyMaxActiveBlocksPerMultiprocessor
// (register sub-partitions, allocation granularities, per-architecture block limits), with no runtime call.
#include <cuda_occupancy.h>

#include <algorithm>

namespace pgx
{
namespace
{
constexpr int kVariants = static_cast<int>(RowNormVariant::kCount);

// How rows of `vectors` vectors, `items` per thread, map onto threads: a group of lanes (a power of two <= 32; several
// rows per block of kRowNormGroupBlock threads) or a block of whole warps per row. `fits` is false when a row would
// need more than kRowNormMaxBlock threads.
struct Geometry
{
    bool fits;
    int32_t threads;
    int32_t lanesPerRow;
    int32_t rowsPerBlock;
};

Geometry geometryOf(int64_t vectors, int32_t items, int32_t maxBlock = kRowNormMaxBlock)
{
    int64_t const lanesNeeded = (vectors + items - 1) / items;
    if (lanesNeeded <= 32)
    {
        int32_t lanes = 1;
        while (lanes < lanesNeeded)
        {
            lanes <<= 1;
        }
        return {true, kRowNormGroupBlock, lanes, kRowNormGroupBlock / lanes};
    }
    int64_t const threads = (lanesNeeded + 31) / 32 * 32;
    if (threads > maxBlock)
    {
        return {false, 0, 0, 0};
    }
    return {true, static_cast<int32_t>(threads), static_cast<int32_t>(threads), 1};
}

// True when rows of `vectors` vectors, `items` per thread, fill every thread of a power-of-two group of <= 32 lanes:
// no thread holds fewer vectors than the others (rows loaded ahead measured 0.03 of copy below rows held as fp32 at
// 16-bit LayerNorm H=768 with 4 vectors per thread, where 8 of 32 lanes' last vector is missing; H200).
bool fillsLaneGroup(int64_t vectors, int32_t items)
{
    int64_t const lanes = vectors / items;
    return vectors % items == 0 && lanes <= 32 && (lanes & (lanes - 1)) == 0;
}

bool built(DeviceLimits const& limits, RowNormVariant variant)
{
    return limits.kernels[static_cast<int>(variant)].registers > 0;
}

int32_t residentWarps(DeviceLimits const& limits, RowNormVariant variant, int32_t threads)
{
    return rowNormResidentBlocks(limits, variant, threads, 0) * threads / 32;
}

struct Planner
{
    RowNormProblem const& p;
    DeviceLimits const& limits;
    int32_t vec;
    int64_t vectors;
    bool sixteenBit;

    RowNormPlan make(RowNormVariant variant, int32_t items, Geometry const& g, bool persistent, int64_t sharedBytes,
        char const* rule) const
    {
        RowNormPlan plan{};
        plan.variant = variant;
        plan.vec = vec;
        plan.items = items;
        plan.threads = g.threads;
        plan.lanesPerRow = g.lanesPerRow;
        plan.rowsPerBlock = g.rowsPerBlock;
        plan.blocksPerMultiprocessor = rowNormResidentBlocks(limits, variant, g.threads, sharedBytes);
        plan.persistent = persistent;
        plan.sharedBytes = sharedBytes;
        plan.rule = rule;
        int64_t const blocksNeeded = (p.rows + g.rowsPerBlock - 1) / g.rowsPerBlock;
        int64_t const wave = static_cast<int64_t>(limits.multiprocessors) * std::max(plan.blocksPerMultiprocessor, 1);
        plan.grid = std::min<int64_t>(blocksNeeded, persistent ? wave : INT32_MAX);
        return plan;
    }

    // True when rows held as fp32 would keep the launch bandwidth-bound rather than latency-bound: they do not fit on
    // chip, or there are more of them than one resident wave of the fp32-held kernel holds.
    bool heldIsBandwidthBound() const
    {
        RowNormVariant const held = vec == 1 ? RowNormVariant::kScalarHeld : RowNormVariant::kHeld;
        Geometry const g = geometryOf(vectors, rowNormItems(held, vec));
        int64_t const wave = static_cast<int64_t>(limits.multiprocessors)
            * std::max(rowNormResidentBlocks(limits, held, g.threads, 0), 1);
        return !g.fits || p.rows > wave * g.rowsPerBlock;
    }

    // The on-chip kernel `variant` in geometry `g`, and how its rows are fed and scheduled.
    RowNormPlan onChip(RowNormVariant variant, Geometry const& g, char const* rule) const
    {
        int32_t const items = rowNormItems(variant, vec);
        bool const heldVariant = variant == RowNormVariant::kHeld || variant == RowNormVariant::kHeldFewer;
        if (heldVariant && sixteenBit && vec > 1 && p.skip)
        {
            // A 16-bit row with skip whose block is alone on its multiprocessor (long rows at 128 registers) comes
            // through shared memory: with no other block to overlap it, its loads would otherwise wait for its own
            // stores. Measured on an H200: SkipLayerNorm fp16 H=12288 0.81 -> 0.88 of copy, H=16384 0.87 -> 0.89;
            // staging rows that share their multiprocessor with other blocks lost up to 0.09 (H=2048). fp32 rows are
            // never staged: staged, they spill.
            RowNormVariant const staged
                = variant == RowNormVariant::kHeld ? RowNormVariant::kStaged : RowNormVariant::kStagedFewer;
            int64_t const bytes = rowNormStagedBytes(items, g.threads);
            int32_t const warps = residentWarps(limits, variant, g.threads);
            int64_t const staticBytes = limits.kernels[static_cast<int>(staged)].staticSharedBytes;
            if (built(limits, staged) && warps > 0 && warps * 32 <= g.threads
                && bytes + staticBytes <= limits.sharedBytesPerBlockOptin
                && rowNormResidentBlocks(limits, staged, g.threads, bytes) > 0)
            {
                return make(staged, items, g, true, bytes, "16-bit rows with skip, block alone on its SM: staged");
            }
        }
        // Vectorized fp32 rows up to H=5120 (several blocks per multiprocessor) run one block per group of rows:
        // blocks that finish hand their multiprocessor to new ones, whose loads overlap the finishing blocks' stores.
        // Measured on an H200, fraction of copy at H=256..5120: LayerNorm 0.93-0.99 against 0.92-0.93 persistent,
        // RMSNorm 0.97-0.99 against 0.93-0.94, SkipLayerNorm 0.95-0.99 against 0.89-0.93; at H=8192 LayerNorm lost
        // 0.01-0.02, at 12288 0.23. 16-bit rows with skip that fill a lane group (H=256, 512, 1024) likewise:
        // SkipLayerNorm 0.89-0.91 -> 0.96-0.97; with idle lanes (H=768) it lost 0.06.
        if (!sixteenBit && vec > 1 && p.cols <= 5120)
        {
            return make(variant, items, g, false, 0, rule);
        }
        if (sixteenBit && vec > 1 && p.skip && fillsLaneGroup(vectors, items))
        {
            return make(variant, items, g, false, 0, rule);
        }
        // 16-bit rows of x alone held packed at 8 vectors per thread, H=2048 (RMSNorm: up to 8192), likewise. Measured
        // on an H200 against the persistent grid, same run: RMSNorm fp16 H=2048/4096/8192 0.921/0.899/0.913 -> 0.959/
        // 0.946/0.949 of copy, bf16 0.908/0.893/0.907 -> 0.959/0.933/0.930; LayerNorm (more instructions per value,
        // near issue-bound) gains only at 2048 (fp16 0.887 -> 0.903, bf16 0.883 -> 0.892) and lost 0.04-0.06 at
        // 4096 and 8192; rows of 5 or 6 vectors per thread and H=16384 lost or tied.
        if (variant == RowNormVariant::kPacked && p.cols >= 2048 && p.cols <= (p.rms ? 8192 : 2048))
        {
            return make(variant, items, g, false, 0, rule);
        }
        return make(variant, items, g, true, 0, rule);
    }

    // Rows held as fp32 (`packed` false) or as raw 16-bit vectors.
    RowNormPlan width(bool packed) const
    {
        RowNormVariant const base
            = vec == 1 ? RowNormVariant::kScalarHeld : (packed ? RowNormVariant::kPacked : RowNormVariant::kHeld);
        int32_t const items = rowNormItems(base, vec);
        Geometry const g = geometryOf(vectors, items);
        if (!g.fits)
        {
            Geometry const block{true, kRowNormMaxBlock, kRowNormMaxBlock, 1};
            RowNormPlan plan = make(RowNormVariant::kStreaming, 0, block, true, 0, "row too long to hold on chip");
            return plan;
        }
        if (vec > 1 && g.lanesPerRow > 32)
        {
            // A packed row whose 8 vectors per thread leave lanes of its last warp idle takes 5 per thread when that
            // fills whole warps. Measured on an H200, H=5120 (80 lanes in 96 threads against 128 in 128): LayerNorm
            // fp16 0.84-0.86 -> 0.89 of copy, RMSNorm fp16 0.91 -> 0.92, bf16 tied.
            if (packed && vectors % (items * 32) != 0 && vectors % (kRowNormWarpFillingItems * 32) == 0)
            {
                return onChip(RowNormVariant::kPackedWarpFilling, geometryOf(vectors, kRowNormWarpFillingItems),
                    "packed row: 5 vectors per thread fill whole warps, 8 do not");
            }
            // One row per block: with 3/4 of the vectors per thread the blocks may pack an SM better (fp16 H=12288
            // held as fp32: 384 threads, one block, 12 warps per SM; with 3 vectors 512 threads, 16 warps). Worth it
            // only when the warps grow at least as much as the per-row reduction work per value does (4/3); for
            // rows held packed, taking it for any gain lost 0.03-0.05 of copy at bf16 H=8192 (H200).
            RowNormVariant const fewer = packed ? RowNormVariant::kPackedFewer : RowNormVariant::kHeldFewer;
            Geometry const gf = geometryOf(vectors, rowNormItems(fewer, vec));
            if (gf.fits && built(limits, fewer)
                && 3 * residentWarps(limits, fewer, gf.threads) >= 4 * residentWarps(limits, base, g.threads))
            {
                return onChip(fewer, gf, "block row: 3/4 of the vectors per thread give >= 4/3 the resident warps");
            }
        }
        return onChip(base, g, packed ? "16-bit row of x alone, enough rows to fill the GPU: held packed"
                                      : (vec == 1 ? "not 16-byte aligned: one element per access" : "held as fp32"));
    }

    // Rows held light: `variant`'s few vectors per thread, one row group per block, no loop over rows.
    RowNormPlan light(RowNormVariant variant, char const* rule) const
    {
        int32_t const items = rowNormItems(variant, vec);
        Geometry const g = geometryOf(vectors, items, rowNormMaxBlock(variant, vec));
        if (vec == 1 || !g.fits || !built(limits, variant)
            || (p.rows + g.rowsPerBlock - 1) / g.rowsPerBlock > INT32_MAX)
        {
            return plan();
        }
        return make(variant, items, g, false, 0, rule);
    }

    // The light variant the measurements chose for these operands and this row width, or kCount for none. Measured
    // on an H200 (docs/benchmarks.md, "2026-12-04, evening"), every variant forced at H = 256..16384 in the same runs
    // (bench/plugins.py --variants), fraction of copy:
    // - 16-bit x alone: LayerNorm held packed at 8 vectors per thread 0.92-0.97 at H >= 768 against 0.89-0.92 on
    //   chip; 4 vectors win up to H=512 (0.95-0.96 against 0.88-0.92). RMSNorm, fewer instructions per value, gains
    //   from the extra warps of 4 vectors up to H=2048 (0.94-0.99); rows whose 8 vectors per thread fill whole warps
    //   at H=4096 and 8192 stay on chip (0.94-0.96 against 0.93-0.95 light); 5120, 12288 and 16384 take 8 (0.94-0.97
    //   against 0.91-0.93).
    // - fp32 x alone: 2 vectors at H <= 256 (LayerNorm 0.958, RMSNorm 0.987 against 0.95 / 0.94), 4 packed up to
    //   H=1024 (768: 0.96 / 0.997 against 0.93 / 0.98; 1024: 0.98 / 0.98 against 0.94), on chip at 2048 and 4096
    //   (ties or better by up to 0.02), 8 packed above (5120: 0.97 against 0.94; 12288: 0.96 against 0.92).
    // - fp32 with skip: 2 vectors up to H=4096 (0.94-0.98 against 0.91-0.94), 4 up to 8192 (0.93 against 0.86), 8 up
    //   to 12288 (0.92 against 0.87; with bias only: without it ptxas spills 108-224 bytes at 85 registers, sm_90).
    // - 16-bit with skip: 2 vectors where they fill every lane (H=256..8192 but 768: 0.90-0.98 against 0.85-0.95),
    //   else 3 where those do, else 4 (768 at 4: 0.93 against 0.92).
    // True when `items` vectors per thread fill every lane of the row: a power-of-two group of <= 32 lanes, or whole
    // warps.
    bool fillsLanes(int32_t items) const
    {
        int64_t const lanes = vectors / items;
        return vectors % items == 0 && (lanes <= 32 ? (lanes & (lanes - 1)) == 0 : lanes % 32 == 0);
    }

    RowNormVariant lightChoice() const
    {
        using V = RowNormVariant;
        // 3 vectors per thread where 4 or 8 leave lanes of a group idle and 3 fill it: 16-bit H=384 and 768 (48 and 96
        // vectors in 16 and 32 lanes). Measured on an H200 (docs/benchmarks.md), RMSNorm 0.977-0.981 of copy against
        // 0.962-0.978 at 4 or 8, SkipLayerNorm ties 4 (0.935-0.945). Not LayerNorm: bf16 lost 0.05 against 8 packed
        // vectors per thread with lanes idle (0.915 / 0.925 against 0.972 / 0.971), fp16 gained 0.01-0.02.
        auto const filled = [&](V variant, V three) {
            return !fillsLanes(rowNormItems(variant, vec)) && fillsLanes(3) && vectors <= 3 * 32 ? three : variant;
        };
        if (!p.skip && sixteenBit)
        {
            if (!p.rms)
            {
                return vectors <= 64 ? V::kLightPacked4 : V::kLightPacked8;
            }
            if (vectors <= 256)
            {
                return filled(V::kLightPacked4, V::kLightPacked3);
            }
            return vectors <= 1024 && vectors % (kRowNormPackedValues / vec * 32) == 0
                ? V::kCount
                : filled(V::kLightPacked8, V::kLightPacked3);
        }
        if (!p.skip)
        {
            return vectors <= 64 ? V::kLight2 : vectors <= 256 ? V::kLightPacked4 : vectors <= 1024 ? V::kCount
                                                                                                  : V::kLightPacked8;
        }
        if (sixteenBit)
        {
            return fillsLanes(2) ? V::kLight2 : fillsLanes(3) && vectors <= 3 * 32 ? V::kLight3 : V::kLight4;
        }
        return vectors <= 1024 ? V::kLight2 : vectors <= 2048 ? V::kLight4 : p.bias ? V::kLight8 : V::kCount;
    }

    // Rows held light, where the measurements chose it and the launch fills the GPU with at least two blocks per
    // multiprocessor: a block alone on its multiprocessor has nothing to overlap its reduction with (every light
    // variant that ran so lost: 0.73-0.83 of copy against 0.87-0.91 on chip, H=12288-16384).
    bool lightPlan(RowNormPlan& out) const
    {
        if (vec == 1 || p.cols < 256 || !heldIsBandwidthBound())
        {
            return false;
        }
        RowNormVariant const variant = lightChoice();
        if (variant == RowNormVariant::kCount || !built(limits, variant))
        {
            return false;
        }
        int32_t const items = rowNormItems(variant, vec);
        Geometry const g = geometryOf(vectors, items, rowNormMaxBlock(variant, vec));
        // No loop over rows: every row group needs a block of its own in the grid.
        if (!g.fits || rowNormResidentBlocks(limits, variant, g.threads, 0) < 2
            || (p.rows + g.rowsPerBlock - 1) / g.rowsPerBlock > INT32_MAX)
        {
            return false;
        }
        out = make(variant, items, g, false, 0, "light rows: few values per thread, one row group per block");
        return true;
    }

    RowNormPlan plan() const
    {
        RowNormPlan light{};
        if (lightPlan(light))
        {
            return light;
        }
        if (vec > 1 && sixteenBit && !p.skip && !p.bias)
        {
            // Rows a group of lanes holds exactly at 4 (or 3) vectors per thread are loaded a row ahead: the current
            // row and the next as raw 16-bit vectors take the registers of one row held as fp32. Measured on an
            // H200, 16-bit LayerNorm at H=256, 512 and 1024: 0.89-0.91 -> 0.93-0.94 of copy. Not for rows of whole
            // warps (H >= 2048): there it tied at H=2048 and lost from H=4096 on, by up to 0.14 (fp16 H=12288) and
            // 0.22 (bf16 H=5120), against rows held packed 8 vectors per thread.
            for (RowNormVariant const ahead : {RowNormVariant::kAhead, RowNormVariant::kAheadFewer})
            {
                int32_t const items = rowNormItems(ahead, vec);
                if (built(limits, ahead) && fillsLaneGroup(vectors, items))
                {
                    return make(ahead, items, geometryOf(vectors, items), true, 0,
                        "16-bit row of x alone filling a lane group: loaded a row ahead");
                }
            }
            // Other short rows stay fp32-held: packed, a row of H <= 512 spreads over <= 8 lanes and measured 0.84
            // of copy against 0.91 at H=256 (H200). So do launches too small to fill the GPU: there latency
            // counts, and packed rows have half the threads each (RMSNorm 1 x 768 fp16: 2.33 us packed, 2.19 held).
            if (p.cols > 8 * kRowNormPackedValues && built(limits, RowNormVariant::kPacked) && heldIsBandwidthBound())
            {
                return width(true);
            }
        }
        return width(false);
    }
};
} // namespace

int64_t rowNormStagedBytes(int32_t items, int32_t threads)
{
    // 16 bytes per vector, x and skip, two rows in turn.
    return int64_t{16} * 2 * kRowNormStagedStreams * items * threads;
}

int32_t rowNormResidentBlocks(
    DeviceLimits const& limits, RowNormVariant variant, int32_t threads, int64_t dynamicSharedBytes)
{
    KernelResources const& kernel = limits.kernels[static_cast<int>(variant)];
    if (kernel.registers <= 0 || threads <= 0)
    {
        return 0;
    }
    cudaOccDeviceProp device;
    device.computeMajor = limits.computeMajor;
    device.computeMinor = limits.computeMinor;
    device.maxThreadsPerBlock = 1024;
    device.maxThreadsPerMultiprocessor = limits.threadsPerMultiprocessor;
    device.regsPerBlock = limits.registersPerBlock;
    device.regsPerMultiprocessor = limits.registersPerMultiprocessor;
    device.warpSize = 32;
    device.sharedMemPerBlock = 48 * 1024;
    device.sharedMemPerMultiprocessor = static_cast<size_t>(limits.sharedBytesPerMultiprocessor);
    device.numSms = limits.multiprocessors;
    device.sharedMemPerBlockOptin = static_cast<size_t>(limits.sharedBytesPerBlockOptin);
    device.reservedSharedMemPerBlock = static_cast<size_t>(limits.reservedSharedBytesPerBlock);
    cudaOccFuncAttributes function;
    // The geometry keeps a block within its variant's launch bound (rowNormMaxBlock); this only bounds the calculator.
    function.maxThreadsPerBlock = rowNormIsLight(variant) ? kRowNormLightMaxBlock : kRowNormMaxBlock;
    function.numRegs = kernel.registers;
    function.sharedSizeBytes = static_cast<size_t>(kernel.staticSharedBytes);
    function.shmemLimitConfig = FUNC_SHMEM_LIMIT_OPTIN;
    function.maxDynamicSharedSizeBytes = static_cast<size_t>(std::max<int64_t>(dynamicSharedBytes, 48 * 1024));
    function.numBlockBarriers = 1;
    cudaOccDeviceState state;
    cudaOccResult result;
    if (cudaOccMaxActiveBlocksPerMultiprocessor(
            &result, &device, &function, &state, threads, static_cast<size_t>(dynamicSharedBytes))
        != CUDA_OCC_SUCCESS)
    {
        return 0;
    }
    return result.activeBlocksPerMultiprocessor;
}

char const* rowNormVariantName(RowNormVariant variant)
{
    static char const* const names[kVariants] = {"scalar-held", "held", "held-fewer", "staged", "staged-fewer",
        "packed", "packed-fewer", "packed-warp-filling", "ahead", "ahead-fewer", "light-2", "light-3", "light-4",
        "light-8", "light-packed-3", "light-packed-4", "light-packed-8", "streaming"};
    int const i = static_cast<int>(variant);
    return i >= 0 && i < kVariants ? names[i] : "?";
}

RowNormPlan planRowNorm(RowNormProblem const& problem, DeviceLimits const& limits)
{
    if (problem.rows <= 0 || problem.cols <= 0)
    {
        RowNormPlan empty{};
        empty.variant = RowNormVariant::kScalarHeld;
        empty.rule = "empty tensor: nothing to launch";
        return empty;
    }
    int32_t const vec = problem.vectorizable ? 16 / problem.elementBytes : 1;
    Planner const planner{problem, limits, vec, problem.cols / vec, problem.elementBytes == 2};
    return planner.plan();
}

RowNormPlan planRowNormAs(RowNormProblem const& problem, DeviceLimits const& limits, RowNormVariant variant)
{
    if (problem.rows <= 0 || problem.cols <= 0 || !rowNormIsLight(variant))
    {
        return planRowNorm(problem, limits);
    }
    int32_t const vec = problem.vectorizable ? 16 / problem.elementBytes : 1;
    Planner const planner{problem, limits, vec, problem.cols / vec, problem.elementBytes == 2};
    return planner.light(variant, "tuning: light variant asked for");
}
} // namespace pgx

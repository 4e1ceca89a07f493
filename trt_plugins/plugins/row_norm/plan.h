// The launch plan of the row-norm kernels (LayerNorm, SkipLayerNorm, RMSNorm) as a pure host function: which kernel
// variant, how many elements per access and vectors per thread, which geometry and grid, from the problem and the
// device's limits alone. No CUDA runtime call: the launcher fills DeviceLimits from the device it runs on, the tests
// and `trt_plugins/tools/plan_table.py` from published limits of every architecture the library ships code for.
#pragma once

#include <cstdint>

namespace pgx
{
// The kernel variants the launcher instantiates (launch.cu switches on these). Vectors per thread depend on the
// access width: a thread holds 32 values of its row as fp32 (16-byte vectors: 8 of fp32, 4 of 16-bit), or 64 as raw
// 16-bit vectors ("packed").
enum class RowNormVariant : int32_t
{
    kScalarHeld,        // 1 element per access (misaligned or odd rows), 12 values per thread held as fp32
    kHeld,              // 16-byte vectors held as fp32, 32 values per thread
    kHeldFewer,         // as kHeld, 3/4 of the vectors per thread (more resident warps for block-wide rows)
    kStaged,            // 16-bit rows with skip, held as fp32, next row copied to shared memory meanwhile
    kStagedFewer,       // as kStaged, 3/4 of the vectors per thread
    kPacked,            // 16-bit rows of x alone held as raw vectors, 64 values per thread
    kPackedFewer,       // as kPacked, 3/4 of the vectors per thread
    kPackedWarpFilling, // as kPacked, 5 vectors per thread where that fills whole warps and 8 does not
    kAhead,             // 16-bit rows of x alone held packed, next row loaded into registers meanwhile, 4 per thread
    kAheadFewer,        // as kAhead, 3 vectors per thread
    kLight2,            // 2 vectors per thread held as fp32, up to 1024 threads per row, one row group per block
    kLight3,            // as kLight2, 3 vectors per thread (rows of 96 vectors in 32 lanes)
    kLight4,            // as kLight2, 4 vectors per thread
    kLight8,            // as kLight2, 8 vectors per thread (fp32 rows: 32 values)
    kLightPacked3,      // rows of x alone held light as raw vectors, 3 per thread (rows of 96 vectors in 32 lanes)
    kLightPacked4,      // as kLightPacked3, 4 vectors per thread
    kLightPacked8,      // as kLightPacked4, 8 vectors per thread
    kStreaming,         // rows too long for registers: one block per row, three passes over the row
    kCount
};

// What one kernel variant of this build takes per thread and per block on the device (cudaFuncGetAttributes);
// registers == 0 marks a variant that was not instantiated for these operands.
struct KernelResources
{
    int32_t registers;
    int32_t staticSharedBytes;
};

// The device's limits (cudaDeviceProp) and the resources of every kernel variant built for the operands at hand.
struct DeviceLimits
{
    int32_t computeMajor;
    int32_t computeMinor;
    int32_t multiprocessors;
    int32_t threadsPerMultiprocessor;
    int32_t registersPerMultiprocessor;
    int32_t registersPerBlock;
    int64_t sharedBytesPerMultiprocessor;
    int64_t sharedBytesPerBlockOptin;
    int64_t reservedSharedBytesPerBlock;
    KernelResources kernels[static_cast<int>(RowNormVariant::kCount)];
};

struct RowNormProblem
{
    int64_t rows;
    int64_t cols;
    int32_t elementBytes; // of the activations (x, skip, y, sum): 4 or 2
    bool vectorizable;    // every pointer 16-byte aligned and cols * elementBytes a multiple of 16
    bool skip;
    bool bias;
    bool rms; // RMSNorm: no mean, fewer instructions per value than LayerNorm
};

struct RowNormPlan
{
    RowNormVariant variant;
    int32_t vec;          // elements per access
    int32_t items;        // vectors per thread held on chip (0: streaming)
    int32_t threads;      // per block
    int32_t lanesPerRow;  // a power of two <= 32 (several rows per block), or threads (a block per row)
    int32_t rowsPerBlock; // rows a block holds at once
    int32_t blocksPerMultiprocessor; // resident at once, by the occupancy calculator
    bool persistent;      // grid = one resident wave, each block looping over rows; else one block per row group
    int64_t grid;
    int64_t sharedBytes;  // dynamic shared memory per block
    char const* rule;     // why this variant: the rule of planRowNorm that chose it
};

// Constants the kernels are built with (kernels.cuh static_asserts against them).
constexpr int32_t kRowNormMaxBlock = 512;   // threads per block of a block-wide row, and of the streaming kernel
constexpr int32_t kRowNormLightMaxBlock = 1024; // threads per block of a block-wide row held light (<= 64 registers)
constexpr int32_t kRowNormLightWideBlock = 768;  // likewise for shares of 32 registers (<= 85 registers)
constexpr int32_t kRowNormGroupBlock = 128; // threads per block of rows held by lane groups
constexpr int32_t kRowNormHeldValues = 32;  // values per thread held as fp32
constexpr int32_t kRowNormPackedValues = 64; // values per thread held as raw 16-bit vectors
constexpr int32_t kRowNormScalarItems = 12; // values per thread held on the 1-element path
constexpr int32_t kRowNormWarpFillingItems = 5;
constexpr int32_t kRowNormStagedStreams = 2; // x and skip

// Vectors per thread of `variant` at `vec` elements per access (0 for the streaming kernel); the kernels are
// instantiated with these counts.
constexpr int32_t rowNormItems(RowNormVariant variant, int32_t vec)
{
    switch (variant)
    {
    case RowNormVariant::kScalarHeld: return kRowNormScalarItems;
    case RowNormVariant::kHeld:
    case RowNormVariant::kStaged:
    case RowNormVariant::kAhead: return kRowNormHeldValues / vec;
    case RowNormVariant::kHeldFewer:
    case RowNormVariant::kStagedFewer: return kRowNormHeldValues / vec * 3 / 4;
    case RowNormVariant::kPacked: return kRowNormPackedValues / vec;
    case RowNormVariant::kPackedFewer: return kRowNormPackedValues / vec * 3 / 4;
    case RowNormVariant::kPackedWarpFilling: return kRowNormWarpFillingItems;
    case RowNormVariant::kAheadFewer: return kRowNormHeldValues / vec - 1;
    case RowNormVariant::kLight2: return 2;
    case RowNormVariant::kLight3:
    case RowNormVariant::kLightPacked3: return 3;
    case RowNormVariant::kLight4:
    case RowNormVariant::kLightPacked4: return 4;
    case RowNormVariant::kLight8:
    case RowNormVariant::kLightPacked8: return 8;
    case RowNormVariant::kStreaming:
    case RowNormVariant::kCount: break;
    }
    return 0;
}
constexpr bool rowNormIsLight(RowNormVariant variant)
{
    return variant == RowNormVariant::kLight2 || variant == RowNormVariant::kLight3
        || variant == RowNormVariant::kLight4 || variant == RowNormVariant::kLight8
        || variant == RowNormVariant::kLightPacked3 || variant == RowNormVariant::kLightPacked4
        || variant == RowNormVariant::kLightPacked8;
}
// Threads per block `variant` is built for at `vec` elements per access (its launch bound): a block-wide row has at
// most this many. Light rows whose share takes at most 16 registers (fp32 values, or raw 16-byte vectors) cap a
// thread at 64 registers (1024 threads); larger shares spill there and take 768 threads (85 registers).
constexpr int32_t rowNormMaxBlock(RowNormVariant variant, int32_t vec)
{
    if (!rowNormIsLight(variant))
    {
        return kRowNormMaxBlock;
    }
    bool const packed = variant == RowNormVariant::kLightPacked3 || variant == RowNormVariant::kLightPacked4
        || variant == RowNormVariant::kLightPacked8;
    int32_t const shareRegisters = rowNormItems(variant, vec) * (packed ? 4 : vec);
    return shareRegisters <= 16 ? kRowNormLightMaxBlock : kRowNormLightWideBlock;
}
// Dynamic shared memory of a staged variant with `items` vectors per thread in blocks of `threads`.
int64_t rowNormStagedBytes(int32_t items, int32_t threads);
// Blocks of `variant` in blocks of `threads` with `dynamicSharedBytes` that one multiprocessor keeps resident.
int32_t rowNormResidentBlocks(DeviceLimits const& limits, RowNormVariant variant, int32_t threads,
    int64_t dynamicSharedBytes);
char const* rowNormVariantName(RowNormVariant variant);

// The plan for `problem` on a device with `limits`; rows <= 0 or cols <= 0 give grid 0 (nothing to launch).
RowNormPlan planRowNorm(RowNormProblem const& problem, DeviceLimits const& limits);
// The plan with `variant` (a light one) where it is built and holds the row; otherwise planRowNorm's. For tuning
// builds (POLYGRAPHY_EXT_TUNING), which measure every light variant at every shape side by side.
RowNormPlan planRowNormAs(RowNormProblem const& problem, DeviceLimits const& limits, RowNormVariant variant);
} // namespace pgx

// Device code of the row-norm kernel family (LayerNorm, SkipLayerNorm, RMSNorm). Which inputs and outputs a row
// has (skip, bias, the residual sum) is a compile-time operand policy; how rows are held and fed is a template
// choice too. launch.cu instantiates the variants that plan.cpp chooses among.
#pragma once
#include "common/kernel_utils.cuh"
#include "plugins/row_norm/plan.h"
#include "plugins/row_norm/row_norm.h"

#include <type_traits>

namespace pgx
{
namespace row_norm
{
// Each thread keeps at most this many fp32 values of its row in registers (the row stays on chip between
// the mean, variance and output passes); larger rows go to the re-reading kernel. With every load of a row in
// flight at once the kernel needs ~125 registers for 32 values held as 16-byte vectors, or 12 scalars (each
// needs its own address); a lower register cap spills (ptxas -res-usage, sm_90; fp32 keeps an 8-byte spill
// slot even at 128). Measured on an H200, 32 values at 128 registers (25% occupancy) beat 16 values at 64
// registers (50%): half the per-row reduction work per value (docs/benchmarks.md).
constexpr int kRegisterFloats = kRowNormHeldValues;
// A 16-bit row that is x alone (no skip, no bias) is held as its raw 16-bit vectors and converted at each use:
// twice the values in the same registers, so twice the bytes a thread has in flight. A 16-bit row held as fp32
// keeps only 64 bytes per thread in flight, too few to cover DRAM latency at the occupancy 128 registers allow.
constexpr int kPackedValues = kRowNormPackedValues;
static_assert(kPackedValues == 2 * kRegisterFloats, "packed rows take the registers of rows held as fp32");
constexpr int kMaxBlock = kRowNormMaxBlock;

// Which tensors a row reads and writes besides x, gamma and y: compile-time, so that a kernel carries no branch
// (and no register) for a tensor its operands do not have. Beta and the RMS form stay run-time flags: each is one
// uniform branch per row.
template <bool Skip, bool Bias, bool Sum>
struct Operands
{
    static constexpr bool kSkip = Skip;
    static constexpr bool kBias = Bias;
    static constexpr bool kSum = Sum;
    static_assert(Skip || (!Bias && !Sum), "bias and the residual sum come with skip (SkipLayerNorm)");
};
using XAlone = Operands<false, false, false>;

struct KernelArgs
{
    RowNormArgs a;
    float invCols;
};

// s = x (+ skip) (+ bias) for the VEC columns starting at column `col` of the row starting at `rowOffset`;
// the residual stream is written here when asked for, so every path writes it exactly once.
template <typename T, typename P, typename Ops, int VEC>
__device__ __forceinline__ void loadSum(RowNormArgs const& a, int64_t rowOffset, int64_t col, float (&v)[VEC])
{
    loadFloats<T, VEC, true>(static_cast<T const*>(a.x) + rowOffset + col, v);
    if constexpr (Ops::kSkip)
    {
        addFloats<T, VEC, true>(static_cast<T const*>(a.skip) + rowOffset + col, v);
    }
    if constexpr (Ops::kBias)
    {
        addFloats<P, VEC>(static_cast<P const*>(a.bias) + col, v);
    }
}

// out = (v - mean) * rstd * gamma (+ beta) for the VEC columns starting at `col`; gamma and beta are both requested
// before either is used. `hasBeta` is a compile-time constant in the on-chip kernel, so there the test costs nothing.
template <typename P, int VEC>
__device__ __forceinline__ void normalizeVector(RowNormArgs const& a, int64_t col, bool hasBeta, float const (&v)[VEC],
    float mean, float rstd, float (&out)[VEC])
{
    Bits<P, VEC> const gammaBits = loadBits<P, VEC>(static_cast<P const*>(a.gamma) + col);
    Bits<P, VEC> betaBits;
    if (hasBeta)
    {
        betaBits = loadBits<P, VEC>(static_cast<P const*>(a.beta) + col);
    }
    float g[VEC];
    unpack(gammaBits, g);
    if (hasBeta)
    {
        float b[VEC];
        unpack(betaBits, b);
#pragma unroll
        for (int j = 0; j < VEC; ++j)
        {
            out[j] = fmaf(v[j] - mean, rstd * g[j], b[j]);
        }
    }
    else
    {
#pragma unroll
        for (int j = 0; j < VEC; ++j)
        {
            out[j] = (v[j] - mean) * (rstd * g[j]);
        }
    }
}

// y = (s - mean) * rstd * gamma (+ beta) for VEC columns.
template <typename T, typename P, int VEC>
__device__ __forceinline__ void storeNormalized(
    RowNormArgs const& a, int64_t rowOffset, int64_t col, float const (&v)[VEC], float mean, float rstd)
{
    float out[VEC];
    normalizeVector<P, VEC>(a, col, a.beta != nullptr, v, mean, rstd, out);
    storeFloats<T, VEC>(static_cast<T*>(a.y) + rowOffset + col, out);
}

// The value the streaming kernel shifts its row sums by: the row's first element. Summing s - s[0] instead of s
// keeps the mean exact for constant rows (variance exactly 0, so eps = 1e-12 gives beta, not noise) and avoids
// the cancellation a large common offset would otherwise cause.
template <typename T, typename P, typename Ops>
__device__ __forceinline__ float rowShift(RowNormArgs const& a, int64_t rowOffset)
{
    if (a.rms)
    {
        return 0.f;
    }
    float v[1];
    loadSum<T, P, Ops, 1>(a, rowOffset, 0, v);
    return v[0];
}

// Count, mean and sum of squared deviations of a set of values. Merging two sets (Chan et al.) is exact when
// both means are equal, so a constant row keeps variance exactly 0; a NaN or Inf anywhere makes the merged
// statistics NaN as the reference's are.
struct Moments
{
    float n;
    float mean;
    float m2;
};

__device__ __forceinline__ Moments merge(Moments a, Moments b)
{
    float const n = a.n + b.n;
    if (n == 0.f)
    {
        return a;
    }
    float const delta = b.mean - a.mean;
    float const wb = __fdividef(b.n, n);
    return {n, a.mean + delta * wb, a.m2 + b.m2 + delta * delta * a.n * wb};
}

// A thread's share of a row held on chip as fp32 values: s = x + skip (+ bias) had to be computed, and rounding it
// to the io type to hold it would add a rounding the output must not have.
template <int VEC, int ITEMS>
struct FloatShare
{
    static constexpr int kItems = ITEMS;
    static constexpr int kVec = VEC;
    float v[ITEMS][VEC];

    __device__ __forceinline__ void values(int i, float (&out)[VEC]) const
    {
#pragma unroll
        for (int j = 0; j < VEC; ++j)
        {
            out[j] = v[i][j];
        }
    }
};

// A thread's share of a row that is x alone, held as x's raw bits and converted at each use.
template <typename T, int VEC, int ITEMS>
struct BitsShare
{
    static constexpr int kItems = ITEMS;
    static constexpr int kVec = VEC;
    Bits<T, VEC> bits[ITEMS];

    __device__ __forceinline__ void values(int i, float (&out)[VEC]) const
    {
        unpack(bits[i], out);
    }
};

// Sum of term(v) over the first `held` values v of a thread's share of a row.
template <typename Held, typename Term>
__device__ __forceinline__ float sumOverShare(Held const& row, int held, Term term)
{
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < Held::kItems; ++i)
    {
        if (i * Held::kVec < held)
        {
            float v[Held::kVec];
            row.values(i, v);
#pragma unroll
            for (int j = 0; j < Held::kVec; ++j)
            {
                sum += term(v[j]);
            }
        }
    }
    return sum;
}

// Sum of (v - center)^2 over the first `held` values of a thread's share of a row.
template <typename Held>
__device__ __forceinline__ float squaredDeviations(Held const& row, int held, float center)
{
    return sumOverShare(row, held, [center](float v) {
        float const d = v - center;
        return d * d;
    });
}

// The moments of a whole block-wide row from each warp's (every lane of a warp passes the same values): one
// barrier, then every warp merges all warps' moments itself.
__device__ __forceinline__ Moments rowMerge(Moments warpMoments, Moments* exchange)
{
    int const lane = threadIdx.x & 31;
    if (lane == 0)
    {
        exchange[threadIdx.x >> 5] = warpMoments;
    }
    __syncthreads();
    Moments m = lane < static_cast<int>(blockDim.x >> 5) ? exchange[lane] : Moments{0.f, 0.f, 0.f};
    for (int offset = 16; offset > 0; offset >>= 1)
    {
        Moments const other{__shfl_xor_sync(0xffffffffu, m.n, offset), __shfl_xor_sync(0xffffffffu, m.mean, offset),
            __shfl_xor_sync(0xffffffffu, m.m2, offset)};
        m = merge(m, other);
    }
    return m;
}

// The thread's share of one row held on chip: its vectors are lane, lane + lanesPerRow, ... of the row, the
// first `items` of ITEMS of them exist (the same for every row).
struct RowShare
{
    int lane;
    int lanesPerRow;
    int vectors; // vectors in a row
    int items;

    // Column of the thread's i-th vector, clamped into the row: loads always read a real address, so they need
    // no branch around them; what a clamped load returns is never used.
    __device__ __forceinline__ int loadColumn(int i, int vec) const
    {
        int const c = i * lanesPerRow + lane;
        return (c < vectors ? c : vectors - 1) * vec;
    }
    __device__ __forceinline__ int column(int i, int vec) const
    {
        return (i * lanesPerRow + lane) * vec;
    }
};

// s = x (+ skip) (+ bias) for the thread's share of a row, from the raw vectors of its x (and skip).
template <typename T, typename P, typename Ops, int VEC, int ITEMS>
__device__ __forceinline__ void combineRowShare(RowNormArgs const& a, RowShare const& share,
    Bits<T, VEC> const (&xBits)[ITEMS], Bits<T, VEC> const (&skipBits)[ITEMS], FloatShare<VEC, ITEMS>& held)
{
    float (&v)[ITEMS][VEC] = held.v;
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
    {
        unpack(xBits[i], v[i]);
        if constexpr (Ops::kSkip)
        {
            addUnpacked(skipBits[i], v[i]);
        }
    }
    if constexpr (Ops::kBias)
    {
        P const* const bias = static_cast<P const*>(a.bias);
        Bits<P, VEC> biasBits[ITEMS];
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            biasBits[i] = loadBits<P, VEC>(bias + share.loadColumn(i, VEC));
        }
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            addUnpacked(biasBits[i], v[i]);
        }
    }
}

// s = x (+ skip) (+ bias) for the thread's share of the row at `rowOffset`. Every load is issued before any
// value is converted, so all of them are in flight together (one memory round trip per row, not per vector).
template <typename T, typename P, typename Ops, int VEC, int ITEMS>
__device__ __forceinline__ void loadRowShare(
    RowNormArgs const& a, RowShare const& share, int64_t rowOffset, FloatShare<VEC, ITEMS>& held)
{
    T const* const x = static_cast<T const*>(a.x) + rowOffset;
    Bits<T, VEC> xBits[ITEMS];
    Bits<T, VEC> skipBits[ITEMS];
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
    {
        xBits[i] = loadBits<T, VEC, true>(x + share.loadColumn(i, VEC));
    }
    if constexpr (Ops::kSkip)
    {
        T const* const skip = static_cast<T const*>(a.skip) + rowOffset;
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            skipBits[i] = loadBits<T, VEC, true>(skip + share.loadColumn(i, VEC));
        }
    }
    combineRowShare<T, P, Ops, VEC, ITEMS>(a, share, xBits, skipBits, held);
}

// Shared-memory slots for a thread's share of x and skip of a row (only rows with skip are staged), 16 bytes per
// vector, for two rows used in turn:
// the thread copies its next row in while it reduces and stores the current one, so the loads of a block that is
// alone on its multiprocessor (long rows at 128 registers) no longer wait for its stores. Slot i of every thread
// of a block is contiguous, so a warp reads consecutive 16-byte words. Each thread reads only the slots it filled
// itself, after waiting for its own copies: no barrier is needed.
constexpr int kStagedStreams = kRowNormStagedStreams;

template <int ITEMS>
struct RowStaging
{
    uint4* slots;

    __device__ __forceinline__ uint4* slot(int buffer, int stream, int i) const
    {
        return slots + ((buffer * kStagedStreams + stream) * ITEMS + i) * static_cast<int>(blockDim.x) + threadIdx.x;
    }
};

// Starts copying the thread's share of x and skip of the row at `rowOffset` into `buffer` of its slots.
template <typename T, int VEC, int ITEMS>
__device__ __forceinline__ void stageRowShare(
    RowNormArgs const& a, RowShare const& share, int64_t rowOffset, RowStaging<ITEMS> const& staging, int buffer)
{
    static_assert(VEC * sizeof(T) == sizeof(uint4), "staged rows move whole 16-byte vectors");
    T const* const x = static_cast<T const*>(a.x) + rowOffset;
    T const* const skip = static_cast<T const*>(a.skip) + rowOffset;
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
    {
        copyToSharedAsync(staging.slot(buffer, 0, i), x + share.loadColumn(i, VEC));
    }
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
    {
        copyToSharedAsync(staging.slot(buffer, 1, i), skip + share.loadColumn(i, VEC));
    }
    commitCopies();
}

// s = x (+ skip) (+ bias) for the thread's share of the row staged in `buffer`.
template <typename T, typename P, typename Ops, int VEC, int ITEMS>
__device__ __forceinline__ void readRowShare(RowNormArgs const& a, RowShare const& share,
    RowStaging<ITEMS> const& staging, int buffer, FloatShare<VEC, ITEMS>& held)
{
    Bits<T, VEC> xBits[ITEMS];
    Bits<T, VEC> skipBits[ITEMS];
    waitCopies();
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
    {
        memcpy(&xBits[i], staging.slot(buffer, 0, i), sizeof(uint4));
        memcpy(&skipBits[i], staging.slot(buffer, 1, i), sizeof(uint4));
    }
    combineRowShare<T, P, Ops, VEC, ITEMS>(a, share, xBits, skipBits, held);
}

// x alone for the thread's share of the row at `rowOffset`.
template <typename T, typename P, typename Ops, int VEC, int ITEMS>
__device__ __forceinline__ void loadRowShare(
    RowNormArgs const& a, RowShare const& share, int64_t rowOffset, BitsShare<T, VEC, ITEMS>& held)
{
    static_assert(!Ops::kSkip, "rows held as raw vectors are x alone");
    T const* const x = static_cast<T const*>(a.x) + rowOffset;
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
    {
        held.bits[i] = loadBits<T, VEC, true>(x + share.loadColumn(i, VEC));
    }
}

// y = (s - mean) * rstd * gamma (+ beta) for the first `held` values of the thread's share.
template <typename T, typename P, bool kBeta, typename Held>
__device__ __forceinline__ void storeNormalizedShare(RowNormArgs const& a, RowShare const& share, int64_t rowOffset,
    int held, Held const& row, float mean, float rstd)
{
    constexpr int VEC = Held::kVec;
    T* const y = static_cast<T*>(a.y) + rowOffset;
#pragma unroll
    for (int i = 0; i < Held::kItems; ++i)
    {
        float v[VEC];
        row.values(i, v);
        float out[VEC];
        normalizeVector<P, VEC>(a, share.loadColumn(i, VEC), kBeta, v, mean, rstd, out);
        if (i * VEC < held)
        {
            storeFloats<T, VEC>(y + share.column(i, VEC), out);
        }
    }
}

// Where the on-chip kernel's rows come from:
// - kDirect: loaded at the top of the row's iteration; a single input stream also asks L2 for the next row.
// - kStaged: x and skip copied into shared memory during the previous row (RowStaging).
// - kAhead: x loaded into registers during the previous row (rows held packed). Measured on an H200
//   (docs/benchmarks.md), 16-bit LayerNorm H=256-1024 0.89-0.91 -> 0.93-0.94 of copy: the loads of the next row
//   are in flight while the current one is reduced and stored, and L2 no longer serves every byte twice
//   (prefetch, then load), which Nsight Compute showed at 91% of its throughput with DRAM at 79%.
enum class Feed
{
    kDirect,
    kStaged,
    kAhead,
};

// Rows held in registers. `lanesPerRow` is a power of two <= 32 (several rows per block, reduced with
// shuffles) or equal to blockDim.x (one row per block). The loop bounds are uniform across the block so
// that every lane reaches every shuffle and barrier. Each thread keeps its share of the row (at most
// ITEMS * VEC values) in registers between the statistics and the output: as fp32 values, or (kPacked, for a
// 16-bit row with no skip and no bias) as x's raw vectors.
//
// Statistics: each warp's share of the row is reduced two-pass (sum shifted by the share's first value, which
// its first lane holds, then squared deviations from the mean) with shuffles only. A row wider than a warp
// merges the warps' moments through shared memory after a single barrier; the exchange buffer alternates
// between two halves from one row to the next, so a warp that runs ahead into the next row never overwrites
// what a slower warp is still reading.
template <typename T, typename P, typename Ops, int VEC, int ITEMS, bool kPacked, Feed kFeed>
__global__ void __launch_bounds__(kMaxBlock, 1) rowNormOnChip(KernelArgs const k, int const lanesPerRow)
{
    constexpr bool kStaged = kFeed == Feed::kStaged;
    constexpr bool kAhead = kFeed == Feed::kAhead;
    static_assert(!kPacked || !Ops::kSkip, "rows held as raw vectors are x alone");
    static_assert(!kStaged || Ops::kSkip, "only rows with skip are staged");
    static_assert(!(kPacked && kStaged), "only rows held as fp32 are staged");
    static_assert(kPacked || !kAhead, "only rows held packed are loaded ahead");
    using Held = std::conditional_t<kPacked, BitsShare<T, VEC, ITEMS>, FloatShare<VEC, ITEMS>>;
    extern __shared__ uint4 stagingSlots[];
    __shared__ Moments exchange[2][kMaxBlock / 32];
    // Elements each warp holds of a block-wide row (the same for every row), kept in shared memory rather than
    // in a register that would live across the whole loop.
    __shared__ float warpCounts[kMaxBlock / 32];
    RowNormArgs const& a = k.a;
    int const rowsPerBlock = blockDim.x / lanesPerRow;
    int const warpLanes = lanesPerRow < 32 ? lanesPerRow : 32;
    bool const blockRow = lanesPerRow > 32;
    RowShare share;
    share.lane = threadIdx.x % lanesPerRow;
    share.lanesPerRow = lanesPerRow;
    // Rows on chip have at most kMaxBlock * kRegisterFloats columns: 32-bit column indices suffice.
    share.vectors = static_cast<int>(a.cols / VEC);
    share.items = share.lane < share.vectors ? (share.vectors - 1 - share.lane) / lanesPerRow + 1 : 0;
    share.items = share.items < ITEMS ? share.items : ITEMS;
    if (blockRow)
    {
        float const held = groupSumInWarp(static_cast<float>(share.items * VEC), 32);
        if ((threadIdx.x & 31) == 0)
        {
            warpCounts[threadIdx.x >> 5] = held;
        }
        __syncwarp();
    }
    int64_t const rowStride = static_cast<int64_t>(gridDim.x) * rowsPerBlock;
    // A thread past the last row reads the last row again (in bounds) and stores nothing.
    auto const offsetOf = [&](int64_t rowIndex) { return (rowIndex < a.rows ? rowIndex : a.rows - 1) * a.cols; };
    RowStaging<ITEMS> const staging{stagingSlots};
    int parity = 0;
    int64_t const firstRow = static_cast<int64_t>(blockIdx.x) * rowsPerBlock;
    Held ahead;
    if (firstRow < a.rows)
    {
        int64_t const firstOffset = offsetOf(firstRow + threadIdx.x / lanesPerRow);
        if constexpr (kStaged)
        {
            stageRowShare<T, VEC, ITEMS>(a, share, firstOffset, staging, 0);
        }
        if constexpr (kAhead)
        {
            loadRowShare<T, P, Ops, VEC, ITEMS>(a, share, firstOffset, ahead);
        }
    }
    for (int64_t base = firstRow; base < a.rows; base += rowStride)
    {
        int64_t const rowIndex = base + threadIdx.x / lanesPerRow;
        bool const valid = rowIndex < a.rows;
        int const held = valid ? share.items * VEC : 0;
        int64_t const rowOffset = offsetOf(rowIndex);
        Held row;
        if constexpr (kStaged)
        {
            readRowShare<T, P, Ops, VEC, ITEMS>(a, share, staging, parity, row);
            if (base + rowStride < a.rows)
            {
                stageRowShare<T, VEC, ITEMS>(a, share, offsetOf(rowIndex + rowStride), staging, parity ^ 1);
            }
        }
        else if constexpr (kAhead)
        {
            row = ahead;
            if (base + rowStride < a.rows)
            {
                loadRowShare<T, P, Ops, VEC, ITEMS>(a, share, offsetOf(rowIndex + rowStride), ahead);
            }
        }
        else
        {
            loadRowShare<T, P, Ops, VEC, ITEMS>(a, share, rowOffset, row);
        }
        // Ask L2 for this thread's share of its next row, so DRAM keeps streaming while this row is reduced and
        // stored. Only for a single input stream: with skip (four streams) enough bytes are in flight already,
        // and the extra L2 footprint cost more than it gained. The test on a.skip is made at run time on purpose
        // (it is always false where Ops::kSkip): the branch ends a scheduling region, and without it ptxas hoisted
        // loads across the reduction and the fp32 rows with skip spilled 28-56 bytes at 128 registers (ptxas -v,
        // sm_90), measured 0.02-0.035 of copy slower at SkipLayerNorm fp32 H=256-1024 (H200).
        if (kFeed == Feed::kDirect && a.skip == nullptr && rowIndex + rowStride < a.rows)
        {
            T const* next = static_cast<T const*>(a.x) + rowOffset + rowStride * a.cols;
#pragma unroll
            for (int i = 0; i < ITEMS; ++i)
            {
                prefetchL2(next + share.loadColumn(i, VEC));
            }
        }
        // Run-time test too (a.sum is set wherever Ops::kSum is), for the same reason: a scheduling region boundary.
        if (Ops::kSum && a.sum != nullptr)
        {
            T* const sum = static_cast<T*>(a.sum) + rowOffset;
#pragma unroll
            for (int i = 0; i < ITEMS; ++i)
            {
                if (i * VEC < held)
                {
                    float v[VEC];
                    row.values(i, v);
                    storeFloats<T, VEC>(sum + share.column(i, VEC), v);
                }
            }
        }
        float mean = 0.f;
        float variance;
        if (a.rms)
        {
            float const squares = groupSumInWarp(squaredDeviations(row, held, 0.f), warpLanes);
            variance = k.invCols
                * (blockRow ? rowMerge(Moments{warpCounts[threadIdx.x >> 5], 0.f, squares}, exchange[parity]).m2
                            : squares);
        }
        else
        {
            float first[VEC];
            row.values(0, first);
            float const shift = __shfl_sync(0xffffffffu, first[0], (threadIdx.x & 31) & ~(warpLanes - 1));
            // Held packed, a thread sums its <= 64 16-bit values first and subtracts held * shift once (exact: 6 bits
            // times 11). Where the shift matters (values around a common offset, or a constant row) those values share
            // a binade, and their 11 (fp16) or 8 (bf16) significant bits plus 6 bits of count fit fp32's 24: the sum
            // is exact, so this is as exact as subtracting per value, at one instruction per value less (+1-2 points
            // of copy bandwidth on an H200).
            float const partial = kPacked
                ? sumOverShare(row, held, [](float v) { return v; }) - static_cast<float>(held) * shift
                : sumOverShare(row, held, [shift](float v) { return v - shift; });
            // Every warp of a block-wide row holds at least one vector (threads = lanes needed, rounded up to 32).
            float const count = blockRow ? warpCounts[threadIdx.x >> 5] : static_cast<float>(a.cols);
            mean = shift + __fdividef(groupSumInWarp(partial, warpLanes), count);
            float squares = groupSumInWarp(squaredDeviations(row, held, mean), warpLanes);
            if (blockRow)
            {
                Moments const total = rowMerge(Moments{count, mean, squares}, exchange[parity]);
                mean = total.mean;
                squares = total.m2;
            }
            variance = squares * k.invCols;
        }
        parity ^= 1;
        float const rstd = rsqrtf(variance + a.epsilon);
        if (a.beta)
        {
            storeNormalizedShare<T, P, true>(a, share, rowOffset, held, row, mean, rstd);
        }
        else
        {
            storeNormalizedShare<T, P, false>(a, share, rowOffset, held, row, mean, rstd);
        }
    }
}

// Rows held light: few values per thread, up to kRowNormLightMaxBlock threads per row, one row group per block and no
// loop over rows. The launch bound caps a thread at 64 or 85 registers where the on-chip kernel takes 105-128 (25%
// occupancy): more warps per multiprocessor, and since each block loads, reduces and stores once and exits, the
// blocks resident on a multiprocessor are at different phases and its loads never wait for its own stores. A row is
// held as fp32 (2 to 8 vectors per thread; up to 16 values per thread, gamma and beta are requested before the
// reduction, so their latency hides behind it) or, for a row of x alone, as its raw vectors (3, 4 or 8 per thread,
// converted at each use, gamma and beta loaded as each vector is stored: the registers go to bytes in flight). Every
// load of x, skip and bias is issued before any is used.
template <typename T, typename P, typename Ops, int VEC, int ITEMS, bool kPacked, bool kBeta>
__device__ __forceinline__ void lightRow(KernelArgs const& k, int lanesPerRow, Moments* exchange)
{
    static_assert(!kPacked || !Ops::kSkip, "rows held as raw vectors are x alone");
    using Held = std::conditional_t<kPacked, BitsShare<T, VEC, ITEMS>, FloatShare<VEC, ITEMS>>;
    // Up to 16 values per thread there are registers for gamma and beta during the reduction.
    constexpr bool kPreloadParams = !kPacked && ITEMS * VEC <= 16;
    RowNormArgs const& a = k.a;
    int const rowsPerBlock = static_cast<int>(blockDim.x) / lanesPerRow;
    int const warpLanes = lanesPerRow < 32 ? lanesPerRow : 32;
    bool const blockRow = lanesPerRow > 32;
    RowShare share;
    share.lane = static_cast<int>(threadIdx.x) % lanesPerRow;
    share.lanesPerRow = lanesPerRow;
    share.vectors = static_cast<int>(a.cols / VEC);
    share.items = share.lane < share.vectors ? (share.vectors - 1 - share.lane) / lanesPerRow + 1 : 0;
    share.items = share.items < ITEMS ? share.items : ITEMS;
    int64_t const rowIndex = static_cast<int64_t>(blockIdx.x) * rowsPerBlock + threadIdx.x / lanesPerRow;
    bool const valid = rowIndex < a.rows;
    // A thread past the last row reads the last row again (in bounds) and stores nothing.
    int64_t const rowOffset = (valid ? rowIndex : a.rows - 1) * a.cols;
    int const held = valid ? share.items * VEC : 0;

    Held row;
    Bits<P, VEC> gammaBits[ITEMS];
    Bits<P, VEC> betaBits[ITEMS];
    if constexpr (kPacked)
    {
        loadRowShare<T, P, Ops, VEC, ITEMS>(a, share, rowOffset, row);
    }
    else
    {
        Bits<T, VEC> xBits[ITEMS];
        Bits<T, VEC> skipBits[ITEMS];
        Bits<P, VEC> biasBits[ITEMS];
        T const* const x = static_cast<T const*>(a.x) + rowOffset;
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            xBits[i] = loadBits<T, VEC, true>(x + share.loadColumn(i, VEC));
        }
        if constexpr (Ops::kSkip)
        {
            T const* const skip = static_cast<T const*>(a.skip) + rowOffset;
#pragma unroll
            for (int i = 0; i < ITEMS; ++i)
            {
                skipBits[i] = loadBits<T, VEC, true>(skip + share.loadColumn(i, VEC));
            }
        }
        if constexpr (Ops::kBias)
        {
#pragma unroll
            for (int i = 0; i < ITEMS; ++i)
            {
                biasBits[i] = loadBits<P, VEC>(static_cast<P const*>(a.bias) + share.loadColumn(i, VEC));
            }
        }
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            unpack(xBits[i], row.v[i]);
            if constexpr (Ops::kSkip)
            {
                addUnpacked(skipBits[i], row.v[i]);
            }
            if constexpr (Ops::kBias)
            {
                addUnpacked(biasBits[i], row.v[i]);
            }
        }
        if constexpr (kPreloadParams)
        {
#pragma unroll
            for (int i = 0; i < ITEMS; ++i)
            {
                gammaBits[i] = loadBits<P, VEC>(static_cast<P const*>(a.gamma) + share.loadColumn(i, VEC));
                if constexpr (kBeta)
                {
                    betaBits[i] = loadBits<P, VEC>(static_cast<P const*>(a.beta) + share.loadColumn(i, VEC));
                }
            }
        }
    }
    // Elements the warp holds of a block-wide row (independent of the loads: scheduled while they are in flight).
    float const count = blockRow ? groupSumInWarp(static_cast<float>(share.items * VEC), 32)
                                 : static_cast<float>(a.cols);
    if constexpr (Ops::kSum)
    {
        T* const sum = static_cast<T*>(a.sum) + rowOffset;
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            if (i * VEC < held)
            {
                float v[VEC];
                row.values(i, v);
                storeFloats<T, VEC>(sum + share.column(i, VEC), v);
            }
        }
    }
    float mean = 0.f;
    float variance;
    if (a.rms)
    {
        float const squares = groupSumInWarp(squaredDeviations(row, held, 0.f), warpLanes);
        variance = k.invCols * (blockRow ? rowMerge(Moments{count, 0.f, squares}, exchange).m2 : squares);
    }
    else
    {
        // Two-pass per warp around the warp's first value, then one merge of the warps' moments (see rowNormOnChip,
        // also for why a packed share may subtract held * shift once). These statistics and the residual store above
        // mirror rowNormOnChip's rather than sharing a function with it: folding both into one changed the on-chip
        // kernel's instruction order (its PTX), and every timing of it was taken on this form.
        float first[VEC];
        row.values(0, first);
        float const shift = __shfl_sync(0xffffffffu, first[0], (threadIdx.x & 31) & ~(warpLanes - 1));
        float const partial = kPacked
            ? sumOverShare(row, held, [](float v) { return v; }) - static_cast<float>(held) * shift
            : sumOverShare(row, held, [shift](float v) { return v - shift; });
        mean = shift + __fdividef(groupSumInWarp(partial, warpLanes), count);
        float squares = groupSumInWarp(squaredDeviations(row, held, mean), warpLanes);
        if (blockRow)
        {
            Moments const total = rowMerge(Moments{count, mean, squares}, exchange);
            mean = total.mean;
            squares = total.m2;
        }
        variance = squares * k.invCols;
    }
    float const rstd = rsqrtf(variance + a.epsilon);
    if constexpr (!kPreloadParams)
    {
        storeNormalizedShare<T, P, kBeta>(a, share, rowOffset, held, row, mean, rstd);
        return;
    }
    T* const y = static_cast<T*>(a.y) + rowOffset;
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
    {
        float v[VEC];
        row.values(i, v);
        float g[VEC];
        unpack(gammaBits[i], g);
        float out[VEC];
        if constexpr (kBeta)
        {
            float b[VEC];
            unpack(betaBits[i], b);
#pragma unroll
            for (int j = 0; j < VEC; ++j)
            {
                out[j] = fmaf(v[j] - mean, rstd * g[j], b[j]);
            }
        }
        else
        {
#pragma unroll
            for (int j = 0; j < VEC; ++j)
            {
                out[j] = (v[j] - mean) * (rstd * g[j]);
            }
        }
        if (i * VEC < held)
        {
            storeFloats<T, VEC>(y + share.column(i, VEC), out);
        }
    }
}

// kMaxThreads is the launch bound (rowNormMaxBlock): 1024 caps a thread at 64 registers; shares of 32 registers take
// 768 (85 registers), as at 64 they spill.
template <typename T, typename P, typename Ops, int VEC, int ITEMS, bool kPacked, int kMaxThreads>
__global__ void __launch_bounds__(kMaxThreads) rowNormLight(KernelArgs const k, int const lanesPerRow)
{
    static_assert(kMaxThreads <= kRowNormLightMaxBlock, "the exchange holds the moments of 32 warps");
    __shared__ Moments exchange[kRowNormLightMaxBlock / 32];
    if (k.a.beta != nullptr)
    {
        lightRow<T, P, Ops, VEC, ITEMS, kPacked, true>(k, lanesPerRow, exchange);
    }
    else
    {
        lightRow<T, P, Ops, VEC, ITEMS, kPacked, false>(k, lanesPerRow, exchange);
    }
}

// Rows too long for registers: one block per row, three passes over the row (mean, variance around the
// mean, output); the second and third mostly hit L2, which holds such a row many times over.
template <typename T, typename P, typename Ops, int VEC>
__global__ void __launch_bounds__(kMaxBlock) rowNormStreaming(KernelArgs const k, int const /*lanesPerRow*/)
{
    __shared__ float scratch[32];
    RowNormArgs const& a = k.a;
    int64_t const vectors = a.cols / VEC;
    for (int64_t row = blockIdx.x; row < a.rows; row += gridDim.x)
    {
        int64_t const rowOffset = row * a.cols;
        float const shift = rowShift<T, P, Ops>(a, rowOffset);
        float partial = 0.f;
        float v[VEC];
        for (int64_t c = threadIdx.x; c < vectors; c += blockDim.x)
        {
            loadSum<T, P, Ops, VEC>(a, rowOffset, c * VEC, v);
            if constexpr (Ops::kSum)
            {
                storeFloats<T, VEC>(static_cast<T*>(a.sum) + rowOffset + c * VEC, v);
            }
#pragma unroll
            for (int j = 0; j < VEC; ++j)
            {
                partial += v[j] - shift;
            }
        }
        float const mean = a.rms ? 0.f : shift + blockSum(partial, scratch) * k.invCols;
        float squares = 0.f;
        for (int64_t c = threadIdx.x; c < vectors; c += blockDim.x)
        {
            loadSum<T, P, Ops, VEC>(a, rowOffset, c * VEC, v);
#pragma unroll
            for (int j = 0; j < VEC; ++j)
            {
                float const d = v[j] - mean;
                squares += d * d;
            }
        }
        float const rstd = rsqrtf(blockSum(squares, scratch) * k.invCols + a.epsilon);
        for (int64_t c = threadIdx.x; c < vectors; c += blockDim.x)
        {
            loadSum<T, P, Ops, VEC>(a, rowOffset, c * VEC, v);
            storeNormalized<T, P, VEC>(a, rowOffset, c * VEC, v, mean, rstd);
        }
    }
}
} // namespace row_norm
} // namespace pgx

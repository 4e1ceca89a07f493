#include "common/kernel_utils.cuh"
#include "common/row_norm.h"

#include <type_traits>

namespace pgx
{
namespace
{
// Each thread keeps at most this many fp32 values of its row in registers (the row stays on chip between
// the mean, variance and output passes); larger rows go to the re-reading kernel. With every load of a row in
// flight at once the kernel needs ~125 registers for 32 values held as 16-byte vectors, or 12 scalars (each
// needs its own address); a lower register cap spills (ptxas -res-usage, sm_90; fp32 keeps an 8-byte spill
// slot even at 128). Measured on an H200, 32 values at 128 registers (25% occupancy) beat 16 values at 64
// registers (50%): half the per-row reduction work per value (docs/benchmarks.md).
constexpr int kRegisterFloats = 32;
// A 16-bit row that is x alone (no skip, no bias) is held as its raw 16-bit vectors and converted at each use:
// twice the values in the same registers, so twice the bytes a thread has in flight. A 16-bit row held as fp32
// keeps only 64 bytes per thread in flight, too few to cover DRAM latency at the occupancy 128 registers allow.
constexpr int kPackedValues = 2 * kRegisterFloats;
constexpr int kScalarItems = 12;
constexpr int kMaxBlock = 512;
constexpr int kGroupBlock = 128;

struct KernelArgs
{
    RowNormArgs a;
    float invCols;
};

// s = x (+ skip) (+ bias) for the VEC columns starting at column `col` of the row starting at `rowOffset`;
// the residual stream is written here when asked for, so every path writes it exactly once.
template <typename T, typename P, int VEC>
__device__ __forceinline__ void loadSum(RowNormArgs const& a, int64_t rowOffset, int64_t col, float (&v)[VEC])
{
    loadFloats<T, VEC, true>(static_cast<T const*>(a.x) + rowOffset + col, v);
    if (a.skip)
    {
        addFloats<T, VEC, true>(static_cast<T const*>(a.skip) + rowOffset + col, v);
    }
    if (a.bias)
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
template <typename T, typename P>
__device__ __forceinline__ float rowShift(RowNormArgs const& a, int64_t rowOffset)
{
    if (a.rms)
    {
        return 0.f;
    }
    float v[1];
    loadSum<T, P, 1>(a, rowOffset, 0, v);
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
template <typename T, typename P, int VEC, int ITEMS>
__device__ __forceinline__ void combineRowShare(RowNormArgs const& a, RowShare const& share,
    Bits<T, VEC> const (&xBits)[ITEMS], Bits<T, VEC> const (&skipBits)[ITEMS], FloatShare<VEC, ITEMS>& held)
{
    float (&v)[ITEMS][VEC] = held.v;
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
    {
        unpack(xBits[i], v[i]);
        if (a.skip)
        {
            addUnpacked(skipBits[i], v[i]);
        }
    }
    if (a.bias)
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
template <typename T, typename P, int VEC, int ITEMS>
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
    if (a.skip)
    {
        T const* const skip = static_cast<T const*>(a.skip) + rowOffset;
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            skipBits[i] = loadBits<T, VEC, true>(skip + share.loadColumn(i, VEC));
        }
    }
    combineRowShare<T, P, VEC, ITEMS>(a, share, xBits, skipBits, held);
}

// Shared-memory slots for a thread's share of x and skip of a row (only rows with skip are staged), 16 bytes per
// vector, for two rows used in turn:
// the thread copies its next row in while it reduces and stores the current one, so the loads of a block that is
// alone on its multiprocessor (long rows at 128 registers) no longer wait for its stores. Slot i of every thread
// of a block is contiguous, so a warp reads consecutive 16-byte words. Each thread reads only the slots it filled
// itself, after waiting for its own copies: no barrier is needed.
constexpr int kStagedStreams = 2; // x and skip

template <int ITEMS>
struct RowStaging
{
    uint4* slots;

    static size_t bytes(int threads)
    {
        return sizeof(uint4) * 2 * kStagedStreams * ITEMS * static_cast<size_t>(threads);
    }
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
template <typename T, typename P, int VEC, int ITEMS>
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
    combineRowShare<T, P, VEC, ITEMS>(a, share, xBits, skipBits, held);
}

// x alone for the thread's share of the row at `rowOffset` (the caller has checked that there is no skip and no bias).
template <typename T, typename P, int VEC, int ITEMS>
__device__ __forceinline__ void loadRowShare(
    RowNormArgs const& a, RowShare const& share, int64_t rowOffset, BitsShare<T, VEC, ITEMS>& held)
{
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
template <typename T, typename P, int VEC, int ITEMS, bool kPacked, Feed kFeed>
__global__ void __launch_bounds__(kMaxBlock, 1) rowNormOnChip(KernelArgs const k, int const lanesPerRow)
{
    constexpr bool kStaged = kFeed == Feed::kStaged;
    constexpr bool kAhead = kFeed == Feed::kAhead;
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
            loadRowShare<T, P, VEC, ITEMS>(a, share, firstOffset, ahead);
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
            readRowShare<T, P, VEC, ITEMS>(a, share, staging, parity, row);
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
                loadRowShare<T, P, VEC, ITEMS>(a, share, offsetOf(rowIndex + rowStride), ahead);
            }
        }
        else
        {
            loadRowShare<T, P, VEC, ITEMS>(a, share, rowOffset, row);
        }
        // Ask L2 for this thread's share of its next row, so DRAM keeps streaming while this row is reduced and
        // stored. Only for a single input stream: with skip (four streams) enough bytes are in flight already,
        // and the extra L2 footprint cost more than it gained.
        if (kFeed == Feed::kDirect && !a.skip && rowIndex + rowStride < a.rows)
        {
            T const* next = static_cast<T const*>(a.x) + rowOffset + rowStride * a.cols;
#pragma unroll
            for (int i = 0; i < ITEMS; ++i)
            {
                prefetchL2(next + share.loadColumn(i, VEC));
            }
        }
        if (a.sum)
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

// Rows too long for registers: one block per row, three passes over the row (mean, variance around the
// mean, output); the second and third mostly hit L2, which holds such a row many times over.
template <typename T, typename P, int VEC>
__global__ void __launch_bounds__(kMaxBlock) rowNormStreaming(KernelArgs const k)
{
    __shared__ float scratch[32];
    RowNormArgs const& a = k.a;
    int64_t const vectors = a.cols / VEC;
    for (int64_t row = blockIdx.x; row < a.rows; row += gridDim.x)
    {
        int64_t const rowOffset = row * a.cols;
        float const shift = rowShift<T, P>(a, rowOffset);
        float partial = 0.f;
        float v[VEC];
        for (int64_t c = threadIdx.x; c < vectors; c += blockDim.x)
        {
            loadSum<T, P, VEC>(a, rowOffset, c * VEC, v);
            if (a.sum)
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
            loadSum<T, P, VEC>(a, rowOffset, c * VEC, v);
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
            loadSum<T, P, VEC>(a, rowOffset, c * VEC, v);
            storeNormalized<T, P, VEC>(a, rowOffset, c * VEC, v, mean, rstd);
        }
    }
}

// How the on-chip kernel holding `items` vectors per thread lays out rows of `vectors` vectors: a group of lanes (a
// power of two <= 32; several rows per block of kGroupBlock threads) or a block of whole warps per row. `fits` is
// false when a row would need more than kMaxBlock threads (the streaming kernel's rows).
struct OnChipGeometry
{
    bool fits;
    int threads; // per block
    int lanesPerRow;
    int rowsPerBlock;
};

inline OnChipGeometry onChipGeometry(int64_t vectors, int items)
{
    int64_t const lanesNeeded = (vectors + items - 1) / items;
    if (lanesNeeded <= 32)
    {
        int lanes = 1;
        while (lanes < lanesNeeded)
        {
            lanes <<= 1;
        }
        return {true, kGroupBlock, lanes, kGroupBlock / lanes};
    }
    int64_t const threads = (lanesNeeded + 31) / 32 * 32;
    if (threads > kMaxBlock)
    {
        return {false, 0, 0, 0};
    }
    return {true, static_cast<int>(threads), static_cast<int>(threads), 1};
}

// Vectors per thread of the on-chip kernel.
template <int VEC, bool kPacked>
constexpr int onChipItems()
{
    return VEC == 1 ? kScalarItems : (kPacked ? kPackedValues : kRegisterFloats) / VEC;
}

// True when rows of `cols` held as fp32 would keep the launch bandwidth-bound rather than latency-bound: they do not
// fit on chip, or `rows` of them fill every slot of one resident wave of the on-chip kernel.
template <typename T, typename P, int VEC>
bool fp32HeldIsBandwidthBound(int64_t rows, int64_t cols)
{
    constexpr int kItems = onChipItems<VEC, false>();
    OnChipGeometry const g = onChipGeometry(cols / VEC, kItems);
    return !g.fits
        || rows > static_cast<int64_t>(
               residentGrid(rowNormOnChip<T, P, VEC, kItems, false, Feed::kDirect>, g.threads, INT64_MAX))
            * g.rowsPerBlock;
}

// True when rows of `vectors` vectors, `items` per thread, fill every thread of a power-of-two group of <= 32 lanes:
// no thread holds fewer vectors than the others (the rows loaded ahead measured 0.03 of copy below rows held as
// fp32 at 16-bit LayerNorm H=768 with 4 vectors per thread, where 8 of 32 lanes' last vector is missing).
inline bool fillsLaneGroup(int64_t vectors, int items)
{
    int64_t const lanes = vectors / items;
    return vectors % items == 0 && lanes <= 32 && (lanes & (lanes - 1)) == 0;
}

// Launches `kernel` over the rows in geometry `g`, with `sharedBytes` of dynamic shared memory per block: on a
// persistent grid (one resident wave, each block looping over rows) or on one block per group of rows.
template <typename Kernel>
cudaError_t launchKernel(Kernel kernel, KernelArgs const& k, OnChipGeometry const& g, size_t sharedBytes,
    bool persistent, cudaStream_t stream)
{
    // Above 48 KiB a kernel must opt in to dynamic shared memory (per device; repeating it is cheap).
    if (sharedBytes > 48 * 1024)
    {
        cudaError_t const status
            = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(sharedBytes));
        if (status != cudaSuccess)
        {
            return status;
        }
    }
    int64_t const blocks = (k.a.rows + g.rowsPerBlock - 1) / g.rowsPerBlock;
    int const grid = persistent ? residentGrid(kernel, g.threads, blocks, sharedBytes)
                                : static_cast<int>(blocks < INT32_MAX ? blocks : INT32_MAX);
    kernel<<<grid, g.threads, sharedBytes, stream>>>(k, g.lanesPerRow);
    return cudaGetLastError();
}

// The on-chip kernel holding ITEMS vectors per thread, in geometry `g`. A 16-bit row with skip, whose block is alone
// on its multiprocessor (long rows at 128 registers), comes through shared memory (RowStaging): with no other block
// to overlap it, the block's loads would otherwise wait for its own stores. Measured on an H200 (docs/benchmarks.md):
// SkipLayerNorm fp16 H=12288 0.81 -> 0.88 of copy, H=16384 0.87 -> 0.89; staging rows that share their
// multiprocessor with other blocks lost up to 0.09 (H=2048). fp32 rows are never staged: staged, they spill (32
// values of x and skip plus the copies' addresses exceed 128 registers).
template <typename T, typename P, int VEC, int ITEMS, bool kPacked>
cudaError_t launchOnChip(KernelArgs const& k, OnChipGeometry const& g, cudaStream_t stream)
{
    auto const kernel = rowNormOnChip<T, P, VEC, ITEMS, kPacked, Feed::kDirect>;
    if constexpr (!kPacked && sizeof(T) == 2 && VEC * sizeof(T) == 16)
    {
        size_t const bytes = RowStaging<ITEMS>::bytes(g.threads);
        int const warps = k.a.skip != nullptr ? residentWarps(kernel, g.threads) : 0;
        if (warps > 0 && warps * 32 <= g.threads && bytes <= sharedBytesPerBlock())
        {
            return launchKernel(rowNormOnChip<T, P, VEC, ITEMS, false, Feed::kStaged>, k, g, bytes, true, stream);
        }
    }
    // Vectorized fp32 rows up to H=5120 (several blocks per multiprocessor) run one block per group of rows: blocks
    // that finish hand their multiprocessor to new ones, whose loads overlap the finishing blocks' stores, which beat
    // a persistent grid prefetching its next rows into L2. Measured on an H200 (docs/benchmarks.md), fraction of copy
    // at H=256..5120: LayerNorm 0.93-0.99 against 0.92-0.93, RMSNorm 0.97-0.99 against 0.93-0.94, SkipLayerNorm
    // 0.95-0.99 against 0.89-0.93. Not for longer rows (at H=8192 LayerNorm lost 0.01-0.02, at 12288 0.23) nor for
    // 16-bit rows in general: there it won at some H and lost up to 0.17 at others. Of those, vectorized 16-bit rows
    // with skip that fill a lane group (H=256, 512, 1024) take it: SkipLayerNorm fp16/bf16 0.89-0.91 -> 0.96-0.97 of
    // copy. Where lanes are left idle (H=768: 24 of 32) it lost 0.06; for block rows (H >= 2048) it lost up to 0.014
    // or won up to 0.027.
    bool const laneGroupSkipRows
        = sizeof(T) == 2 && VEC > 1 && k.a.skip != nullptr && fillsLaneGroup(k.a.cols / VEC, ITEMS);
    bool const persistent = !(sizeof(T) == 4 && VEC > 1 && k.a.cols <= 5120) && !laneGroupSkipRows;
    return launchKernel(kernel, k, g, 0, persistent, stream);
}

template <typename T, typename P, int VEC, bool kPacked>
cudaError_t launchWidth(KernelArgs const& k, cudaStream_t stream)
{
    constexpr int kItems = onChipItems<VEC, kPacked>();
    int64_t const vectors = k.a.cols / VEC;
    OnChipGeometry const g = onChipGeometry(vectors, kItems);
    if (!g.fits)
    {
        auto const kernel = rowNormStreaming<T, P, VEC>;
        kernel<<<residentGrid(kernel, kMaxBlock, k.a.rows), kMaxBlock, 0, stream>>>(k);
        return cudaGetLastError();
    }
    if constexpr (VEC > 1)
    {
        if (g.lanesPerRow > 32)
        {
            if constexpr (kPacked)
            {
                // A packed row whose 8 vectors per thread leave lanes of its last warp idle takes 5 per thread when
                // that fills whole warps. Measured on an H200 (docs/benchmarks.md), H=5120 (80 lanes in 96 threads
                // against 128 in 128): LayerNorm fp16 0.84-0.86 -> 0.89 of copy, RMSNorm fp16 0.91 -> 0.92, bf16 tied.
                constexpr int kWarpFillingItems = 5;
                if (vectors % (kItems * 32) != 0 && vectors % (kWarpFillingItems * 32) == 0)
                {
                    return launchOnChip<T, P, VEC, kWarpFillingItems, kPacked>(
                        k, onChipGeometry(vectors, kWarpFillingItems), stream);
                }
            }
            // One row per block, and at 128 registers an SM holds only 512 threads: with 3/4 of the vectors per
            // thread the blocks may pack it better (fp16 H=12288 held as fp32: 384 threads, one block, 12 warps per
            // SM; with 3 vectors 512 threads, 16 warps). Worth it only when the warps grow at least as much as the
            // per-row reduction work per value does (4/3). Measured for rows held packed too (H200): taking it for
            // any gain in warps won 0.01-0.02 of copy at H=5120 but lost 0.03-0.05 at bf16 H=8192 (18 warps of 6
            // vectors against 16 of 8).
            constexpr int kFewerItems = kItems * 3 / 4;
            OnChipGeometry const fewer = onChipGeometry(vectors, kFewerItems);
            if (fewer.fits
                && 3 * residentWarps(rowNormOnChip<T, P, VEC, kFewerItems, kPacked, Feed::kDirect>, fewer.threads)
                    >= 4 * residentWarps(rowNormOnChip<T, P, VEC, kItems, kPacked, Feed::kDirect>, g.threads))
            {
                return launchOnChip<T, P, VEC, kFewerItems, kPacked>(k, fewer, stream);
            }
        }
    }
    return launchOnChip<T, P, VEC, kItems, kPacked>(k, g, stream);
}

// 16-bit rows of x alone, held packed and loaded a row ahead (Feed::kAhead) on a persistent grid.
template <typename T, typename P, int VEC, int ITEMS>
cudaError_t launchAhead(KernelArgs const& k, cudaStream_t stream)
{
    OnChipGeometry const g = onChipGeometry(k.a.cols / VEC, ITEMS);
    return launchKernel(rowNormOnChip<T, P, VEC, ITEMS, true, Feed::kAhead>, k, g, 0, true, stream);
}

template <typename T, typename P>
cudaError_t launchTyped(KernelArgs const& k, cudaStream_t stream)
{
    constexpr int kVec = 16 / sizeof(T);
    RowNormArgs const& a = k.a;
    // Every pointer, and every row start (cols * sizeof(T)), must allow 16-byte accesses; param vectors of
    // kVec elements are 16 or 32 bytes and are moved in 16-byte chunks, so 16-byte alignment covers them too.
    bool const vectorized = a.cols % kVec == 0 && isAligned(a.x, 16) && isAligned(a.skip, 16) && isAligned(a.y, 16)
        && isAligned(a.sum, 16) && isAligned(a.gamma, 16) && isAligned(a.beta, 16) && isAligned(a.bias, 16);
    if (!vectorized)
    {
        return launchWidth<T, P, 1, false>(k, stream);
    }
    if constexpr (sizeof(T) == 2)
    {
        if (a.skip == nullptr && a.bias == nullptr)
        {
            // Rows a group of lanes holds exactly at 4 (or 3) vectors per thread are loaded a row ahead: the current
            // row and the next one as raw 16-bit vectors take the registers of one row held as fp32. Measured on an
            // H200 (docs/benchmarks.md), 16-bit LayerNorm at H=256, 512 and 1024: 0.89-0.91 -> 0.93-0.94 of copy.
            // Not for rows of whole warps (H >= 2048): there the same loads tied at H=2048 and lost from H=4096 on,
            // by up to 0.14 (fp16 H=12288) and 0.22 (bf16 H=5120), against rows held packed 8 vectors per thread.
            constexpr int kAheadItems = kRegisterFloats / kVec;
            int64_t const vectors = a.cols / kVec;
            if (fillsLaneGroup(vectors, kAheadItems))
            {
                return launchAhead<T, P, kVec, kAheadItems>(k, stream);
            }
            if (fillsLaneGroup(vectors, kAheadItems - 1))
            {
                return launchAhead<T, P, kVec, kAheadItems - 1>(k, stream);
            }
        }
        // Other short rows stay fp32-held: packed 8 vectors per thread, a row of H <= 512 spreads over <= 8 lanes,
        // each load instruction of a warp then touches 4-8 rows, and at H=256 that measured 0.84 of copy bandwidth
        // against 0.91 (H200). So do launches too small to fill the GPU: there latency counts, and packed rows have
        // half the threads each (RMSNorm 1 x 768 fp16: 2.33 us packed, 2.19 fp32-held).
        if (a.skip == nullptr && a.bias == nullptr && a.cols > 8 * kPackedValues
            && fp32HeldIsBandwidthBound<T, P, kVec>(a.rows, a.cols))
        {
            return launchWidth<T, P, kVec, true>(k, stream);
        }
    }
    return launchWidth<T, P, kVec, false>(k, stream);
}
} // namespace

cudaError_t launchRowNorm(RowNormArgs const& args, Dtype io, Dtype param, cudaStream_t stream)
{
    if (args.rows <= 0 || args.cols <= 0)
    {
        return cudaSuccess;
    }
    KernelArgs const k{args, static_cast<float>(1.0 / static_cast<double>(args.cols))};
    return dispatchTypes(io, param,
        [&](auto t, auto p) { return launchTyped<decltype(t), decltype(p)>(k, stream); });
}
} // namespace pgx

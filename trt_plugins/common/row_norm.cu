#include "common/kernel_utils.cuh"
#include "common/row_norm.h"

namespace pgx
{
namespace
{
// Each thread keeps at most this many fp32 values of its row in registers (the row stays on chip between
// the mean, variance and output passes); larger rows go to the re-reading kernel.
constexpr int kRegisterFloats = 32;
constexpr int kScalarItems = 16;
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

// y = (s - mean) * rstd * gamma (+ beta) for VEC columns.
template <typename T, typename P, int VEC>
__device__ __forceinline__ void storeNormalized(
    RowNormArgs const& a, int64_t rowOffset, int64_t col, float const (&v)[VEC], float mean, float rstd)
{
    float g[VEC];
    loadFloats<P, VEC>(static_cast<P const*>(a.gamma) + col, g);
    float out[VEC];
#pragma unroll
    for (int j = 0; j < VEC; ++j)
    {
        out[j] = (v[j] - mean) * rstd * g[j];
    }
    if (a.beta)
    {
        addFloats<P, VEC>(static_cast<P const*>(a.beta) + col, out);
    }
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

// Sum of (v - center)^2 over the first `held` values of a thread's share of a row.
template <int ITEMS, int VEC>
__device__ __forceinline__ float squaredDeviations(float const (&v)[ITEMS][VEC], int held, float center)
{
    float squares = 0.f;
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
    {
        if (i * VEC < held)
        {
#pragma unroll
            for (int j = 0; j < VEC; ++j)
            {
                float const d = v[i][j] - center;
                squares += d * d;
            }
        }
    }
    return squares;
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

// Rows held in registers. `lanesPerRow` is a power of two <= 32 (several rows per block, reduced with
// shuffles) or equal to blockDim.x (one row per block). The loop bounds are uniform across the block so
// that every lane reaches every shuffle and barrier. Each thread keeps its share of the row (at most
// ITEMS * VEC values) in registers between the statistics and the output.
//
// Statistics: each warp's share of the row is reduced two-pass (sum shifted by the share's first value, which
// its first lane holds, then squared deviations from the mean) with shuffles only. A row wider than a warp
// merges the warps' moments through shared memory after a single barrier; the exchange buffer alternates
// between two halves from one row to the next, so a warp that runs ahead into the next row never overwrites
// what a slower warp is still reading.
template <typename T, typename P, int VEC, int ITEMS>
__global__ void __launch_bounds__(kMaxBlock, 2) rowNormOnChip(KernelArgs const k, int const lanesPerRow)
{
    __shared__ Moments exchange[2][kMaxBlock / 32];
    RowNormArgs const& a = k.a;
    int const rowsPerBlock = blockDim.x / lanesPerRow;
    int const lane = threadIdx.x % lanesPerRow;
    int const warpLanes = lanesPerRow < 32 ? lanesPerRow : 32;
    bool const blockRow = lanesPerRow > 32;
    // Rows on chip have at most kMaxBlock * kRegisterFloats columns: 32-bit column indices suffice.
    int const vectors = static_cast<int>(a.cols / VEC);
    int64_t const rowStride = static_cast<int64_t>(gridDim.x) * rowsPerBlock;
    // Elements each warp holds of a block-wide row (the same for every row), kept in shared memory rather than
    // in a register that would live across the whole loop.
    __shared__ float warpCounts[kMaxBlock / 32];
    if (blockRow && (threadIdx.x & 31) == 0)
    {
        int held = 0;
        for (int i = 0; i < ITEMS; ++i)
        {
            int const lo = i * lanesPerRow + static_cast<int>(threadIdx.x);
            int const hi = lo + 32 < vectors ? lo + 32 : vectors;
            held += hi > lo ? hi - lo : 0;
        }
        warpCounts[threadIdx.x >> 5] = static_cast<float>(held * VEC);
    }
    __syncwarp();
    int parity = 0;
    for (int64_t base = static_cast<int64_t>(blockIdx.x) * rowsPerBlock; base < a.rows; base += rowStride)
    {
        int64_t const row = base + threadIdx.x / lanesPerRow;
        bool const valid = row < a.rows;
        int64_t const rowOffset = row * a.cols;
        float v[ITEMS][VEC];
        v[0][0] = 0.f;
        int held = 0;
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            int const c = i * lanesPerRow + lane;
            if (valid && c < vectors)
            {
                loadSum<T, P, VEC>(a, rowOffset, c * VEC, v[i]);
                if (a.sum)
                {
                    storeFloats<T, VEC>(static_cast<T*>(a.sum) + rowOffset + c * VEC, v[i]);
                }
                held += VEC;
            }
        }
        // Ask L2 for this thread's share of its next row, so DRAM keeps streaming while this row is reduced and
        // stored. Only for a single input stream: with skip (four streams) enough bytes are in flight already,
        // and the extra L2 footprint cost more than it gained.
        if (!a.skip && row + rowStride < a.rows)
        {
            T const* next = static_cast<T const*>(a.x) + rowOffset + rowStride * a.cols;
#pragma unroll
            for (int i = 0; i < ITEMS; ++i)
            {
                int const c = i * lanesPerRow + lane;
                if (c < vectors)
                {
                    prefetchL2(next + c * VEC);
                }
            }
        }
        float mean = 0.f;
        float variance;
        if (a.rms)
        {
            float const squares = groupSumInWarp(squaredDeviations(v, held, 0.f), warpLanes);
            variance = k.invCols
                * (blockRow ? rowMerge(Moments{warpCounts[threadIdx.x >> 5], 0.f, squares}, exchange[parity]).m2
                            : squares);
        }
        else
        {
            float const shift = __shfl_sync(0xffffffffu, v[0][0], (threadIdx.x & 31) & ~(warpLanes - 1));
            float partial = 0.f;
#pragma unroll
            for (int i = 0; i < ITEMS; ++i)
            {
                if (i * VEC < held)
                {
#pragma unroll
                    for (int j = 0; j < VEC; ++j)
                    {
                        partial += v[i][j] - shift;
                    }
                }
            }
            // Every warp of a block-wide row holds at least one vector (threads = lanes needed, rounded up to 32).
            float const count = blockRow ? warpCounts[threadIdx.x >> 5] : static_cast<float>(a.cols);
            mean = shift + __fdividef(groupSumInWarp(partial, warpLanes), count);
            float squares = groupSumInWarp(squaredDeviations(v, held, mean), warpLanes);
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
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            if (i * VEC < held)
            {
                storeNormalized<T, P, VEC>(a, rowOffset, (i * lanesPerRow + lane) * VEC, v[i], mean, rstd);
            }
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

template <typename T, typename P, int VEC>
cudaError_t launchWidth(KernelArgs const& k, cudaStream_t stream)
{
    constexpr int kItems = VEC == 1 ? kScalarItems : kRegisterFloats / VEC;
    int64_t const vectors = k.a.cols / VEC;
    int64_t const lanesNeeded = (vectors + kItems - 1) / kItems;
    if (lanesNeeded <= 32)
    {
        int lanes = 1;
        while (lanes < lanesNeeded)
        {
            lanes <<= 1;
        }
        int const rowsPerBlock = kGroupBlock / lanes;
        auto const kernel = rowNormOnChip<T, P, VEC, kItems>;
        int const grid = residentGrid(kernel, kGroupBlock, (k.a.rows + rowsPerBlock - 1) / rowsPerBlock);
        kernel<<<grid, kGroupBlock, 0, stream>>>(k, lanes);
    }
    else if (lanesNeeded <= kMaxBlock)
    {
        int const threads = static_cast<int>((lanesNeeded + 31) / 32 * 32);
        auto const kernel = rowNormOnChip<T, P, VEC, kItems>;
        kernel<<<residentGrid(kernel, threads, k.a.rows), threads, 0, stream>>>(k, threads);
    }
    else
    {
        auto const kernel = rowNormStreaming<T, P, VEC>;
        kernel<<<residentGrid(kernel, kMaxBlock, k.a.rows), kMaxBlock, 0, stream>>>(k);
    }
    return cudaGetLastError();
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
    return vectorized ? launchWidth<T, P, kVec>(k, stream) : launchWidth<T, P, 1>(k, stream);
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

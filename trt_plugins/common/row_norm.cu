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
    loadFloats<T, VEC>(static_cast<T const*>(a.x) + rowOffset + col, v);
    if (a.skip)
    {
        float s[VEC];
        loadFloats<T, VEC>(static_cast<T const*>(a.skip) + rowOffset + col, s);
#pragma unroll
        for (int j = 0; j < VEC; ++j)
        {
            v[j] += s[j];
        }
    }
    if (a.bias)
    {
        float b[VEC];
        loadFloats<P, VEC>(static_cast<P const*>(a.bias) + col, b);
#pragma unroll
        for (int j = 0; j < VEC; ++j)
        {
            v[j] += b[j];
        }
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
        float b[VEC];
        loadFloats<P, VEC>(static_cast<P const*>(a.beta) + col, b);
#pragma unroll
        for (int j = 0; j < VEC; ++j)
        {
            out[j] += b[j];
        }
    }
    storeFloats<T, VEC>(static_cast<T*>(a.y) + rowOffset + col, out);
}

// The value every row's statistics are shifted by: its first element. Summing s - s[0] instead of s keeps the
// mean exact for constant rows (variance exactly 0, so eps = 1e-12 gives beta, not noise) and avoids the
// cancellation a large common offset would otherwise cause.
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

__device__ __forceinline__ float groupSum(float v, int lanesPerRow, float* scratch)
{
    return lanesPerRow <= 32 ? groupSumInWarp(v, lanesPerRow) : blockSum(v, scratch);
}

// Rows held in registers. `lanesPerRow` is a power of two <= 32 (several rows per block, reduced with
// shuffles) or equal to blockDim.x (one row per block). The loop bounds are uniform across the block so
// that every lane reaches every shuffle and barrier.
template <typename T, typename P, int VEC, int ITEMS>
__global__ void __launch_bounds__(kMaxBlock, 2) rowNormOnChip(KernelArgs const k, int const lanesPerRow)
{
    __shared__ float scratch[32];
    RowNormArgs const& a = k.a;
    int const rowsPerBlock = blockDim.x / lanesPerRow;
    int const lane = threadIdx.x % lanesPerRow;
    // Rows on chip have at most kMaxBlock * kRegisterFloats columns: 32-bit column indices suffice.
    int const vectors = static_cast<int>(a.cols / VEC);
    for (int64_t base = static_cast<int64_t>(blockIdx.x) * rowsPerBlock; base < a.rows;
         base += static_cast<int64_t>(gridDim.x) * rowsPerBlock)
    {
        int64_t const row = base + threadIdx.x / lanesPerRow;
        bool const valid = row < a.rows;
        int64_t const rowOffset = row * a.cols;
        float v[ITEMS][VEC];
        float const shift = valid ? rowShift<T, P>(a, rowOffset) : 0.f;
        float partial = 0.f;
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
#pragma unroll
                for (int j = 0; j < VEC; ++j)
                {
                    partial += v[i][j] - shift;
                }
            }
        }
        float mean = 0.f;
        if (!a.rms)
        {
            mean = shift + groupSum(partial, lanesPerRow, scratch) * k.invCols;
        }
        float squares = 0.f;
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            int const c = i * lanesPerRow + lane;
            if (valid && c < vectors)
            {
#pragma unroll
                for (int j = 0; j < VEC; ++j)
                {
                    float const d = v[i][j] - mean;
                    squares += d * d;
                }
            }
        }
        float const rstd = rsqrtf(groupSum(squares, lanesPerRow, scratch) * k.invCols + a.epsilon);
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            int const c = i * lanesPerRow + lane;
            if (valid && c < vectors)
            {
                storeNormalized<T, P, VEC>(a, rowOffset, c * VEC, v[i], mean, rstd);
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
        int64_t const blocks = (k.a.rows + rowsPerBlock - 1) / rowsPerBlock;
        int const grid = static_cast<int>(blocks < residentBlocks(kGroupBlock) ? blocks : residentBlocks(kGroupBlock));
        rowNormOnChip<T, P, VEC, kItems><<<grid, kGroupBlock, 0, stream>>>(k, lanes);
    }
    else if (lanesNeeded <= kMaxBlock)
    {
        int const threads = static_cast<int>((lanesNeeded + 31) / 32 * 32);
        int const resident = residentBlocks(threads);
        int const grid = static_cast<int>(k.a.rows < resident ? k.a.rows : resident);
        rowNormOnChip<T, P, VEC, kItems><<<grid, threads, 0, stream>>>(k, threads);
    }
    else
    {
        int const resident = residentBlocks(kMaxBlock);
        int const grid = static_cast<int>(k.a.rows < resident ? k.a.rows : resident);
        rowNormStreaming<T, P, VEC><<<grid, kMaxBlock, 0, stream>>>(k);
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
    bool const fp32Params = param == Dtype::kFloat32;
    switch (io)
    {
    case Dtype::kFloat32: return launchTyped<float, float>(k, stream);
    case Dtype::kFloat16:
        return fp32Params ? launchTyped<__half, float>(k, stream) : launchTyped<__half, __half>(k, stream);
    case Dtype::kBFloat16:
        return fp32Params ? launchTyped<__nv_bfloat16, float>(k, stream)
                          : launchTyped<__nv_bfloat16, __nv_bfloat16>(k, stream);
    }
    return cudaErrorInvalidValue;
}
} // namespace pgx

// Building blocks shared by the plugin kernels: element conversion, vector packs whose width is decided on
// the host from the alignment of every pointer, group reductions, and the launch geometry.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace pgx
{
__device__ __forceinline__ float toFloat(float v)
{
    return v;
}
__device__ __forceinline__ float toFloat(__half v)
{
    return __half2float(v);
}
__device__ __forceinline__ float toFloat(__nv_bfloat16 v)
{
    return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T fromFloat(float v);
template <>
__device__ __forceinline__ float fromFloat<float>(float v)
{
    return v;
}
template <>
__device__ __forceinline__ __half fromFloat<__half>(float v)
{
    return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 fromFloat<__nv_bfloat16>(float v)
{
    return __float2bfloat16_rn(v);
}

// N consecutive elements moved as 16-byte (or narrower, when N * sizeof(T) < 16) transactions. The alignment
// is capped at 16 bytes on purpose: wider packs (8 fp32 params next to 8 fp16 values) must not let the
// compiler emit 32-byte accesses that the host-side alignment check never promised.
template <typename T, int N>
struct Pack
{
    static constexpr int kBytes = static_cast<int>(sizeof(T)) * N;
    static constexpr int kChunkBytes = kBytes < 16 ? kBytes : 16;
    static constexpr int kChunks = kBytes / kChunkBytes;
    static constexpr int kPerChunk = N / kChunks;
    struct alignas(kChunkBytes) Chunk
    {
        T v[kPerChunk];
    };
    T v[N];
};

template <typename T, int N>
__device__ __forceinline__ void loadFloats(T const* __restrict__ src, float (&dst)[N])
{
    using P = Pack<T, N>;
    typename P::Chunk const* chunks = reinterpret_cast<typename P::Chunk const*>(src);
#pragma unroll
    for (int c = 0; c < P::kChunks; ++c)
    {
        typename P::Chunk const chunk = chunks[c];
#pragma unroll
        for (int i = 0; i < P::kPerChunk; ++i)
        {
            dst[c * P::kPerChunk + i] = toFloat(chunk.v[i]);
        }
    }
}

template <typename T, int N>
__device__ __forceinline__ void storeFloats(T* __restrict__ dst, float const (&src)[N])
{
    using P = Pack<T, N>;
    typename P::Chunk* chunks = reinterpret_cast<typename P::Chunk*>(dst);
#pragma unroll
    for (int c = 0; c < P::kChunks; ++c)
    {
        typename P::Chunk chunk;
#pragma unroll
        for (int i = 0; i < P::kPerChunk; ++i)
        {
            chunk.v[i] = fromFloat<T>(src[c * P::kPerChunk + i]);
        }
        chunks[c] = chunk;
    }
}

// Sum over aligned groups of `width` lanes (a power of two <= 32); every lane gets the group's total.
__device__ __forceinline__ float groupSumInWarp(float v, int width)
{
    for (int offset = width >> 1; offset > 0; offset >>= 1)
    {
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    }
    return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
// `scratch` holds 32 floats; the trailing barrier lets the caller reuse it for the next reduction.
__device__ __forceinline__ float blockSum(float v, float* scratch)
{
    int const lane = threadIdx.x & 31;
    int const warp = threadIdx.x >> 5;
    int const warps = blockDim.x >> 5;
    v = groupSumInWarp(v, 32);
    if (lane == 0)
    {
        scratch[warp] = v;
    }
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.f;
    v = groupSumInWarp(v, 32);
    __syncthreads();
    return v;
}

// Host side: true when `ptr` may be accessed in `bytes`-wide transactions.
inline bool isAligned(void const* ptr, int bytes)
{
    return ptr == nullptr || reinterpret_cast<uintptr_t>(ptr) % static_cast<uintptr_t>(bytes) == 0;
}

// Host side: how many blocks of `threads` threads the current device keeps resident at once; grids larger
// than this gain nothing because every kernel here loops over its work with a grid stride.
int residentBlocks(int threads);
} // namespace pgx

// Building blocks shared by the plugin kernels: element conversion, vector packs whose width is decided on
// the host from the alignment of every pointer and group reductions.
#pragma once
#include "common/dtype.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

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

// One Pack chunk moved as a single access of its width.
template <int Bytes>
struct RawChunk;
template <>
struct RawChunk<16>
{
    using type = uint4;
};
template <>
struct RawChunk<8>
{
    using type = uint2;
};
template <>
struct RawChunk<4>
{
    using type = unsigned int;
};
template <>
struct RawChunk<2>
{
    using type = unsigned short;
};

// The raw bits of N consecutive elements, not yet converted. Kernels load every vector a thread needs first and
// convert afterwards: a load whose result is used right away (or inside a branch around it) makes the thread
// wait out a whole memory round trip before it can issue the next one.
template <typename T, int N>
struct Bits
{
    using P = Pack<T, N>;
    using Raw = typename RawChunk<P::kChunkBytes>::type;
    Raw chunk[P::kChunks];
};

// Streamed tensors (read or written once) use the evict-first cache hint so that they do not push the next
// rows, prefetched into L2, out of it.
template <typename T, int N, bool Streamed = false>
__device__ __forceinline__ Bits<T, N> loadBits(T const* __restrict__ src)
{
    using B = Bits<T, N>;
    typename B::Raw const* raw = reinterpret_cast<typename B::Raw const*>(src);
    B bits;
#pragma unroll
    for (int c = 0; c < B::P::kChunks; ++c)
    {
        bits.chunk[c] = Streamed ? __ldcs(raw + c) : __ldg(raw + c);
    }
    return bits;
}

template <typename T, int N>
__device__ __forceinline__ void unpack(Bits<T, N> const& bits, float (&dst)[N])
{
    using P = Pack<T, N>;
#pragma unroll
    for (int c = 0; c < P::kChunks; ++c)
    {
        typename P::Chunk chunk;
        memcpy(&chunk, &bits.chunk[c], sizeof(chunk));
#pragma unroll
        for (int i = 0; i < P::kPerChunk; ++i)
        {
            dst[c * P::kPerChunk + i] = toFloat(chunk.v[i]);
        }
    }
}

// bf16 to fp32 is the bf16 bits in the upper half of a word: one shift or mask per value, where converting each
// element separately costs an extract and a shift (PRMT + SHF). 16-bit LayerNorm converts every value three times.
template <int N>
__device__ __forceinline__ void unpack(Bits<__nv_bfloat16, N> const& bits, float (&dst)[N])
{
    if constexpr (N % 2 == 0)
    {
        uint32_t words[N / 2];
        static_assert(sizeof(words) == sizeof(bits), "bf16 vectors are whole 32-bit words");
        memcpy(words, &bits, sizeof(words));
#pragma unroll
        for (int w = 0; w < N / 2; ++w)
        {
            dst[2 * w] = __uint_as_float(words[w] << 16);
            dst[2 * w + 1] = __uint_as_float(words[w] & 0xffff0000u);
        }
    }
    else
    {
        static_assert(N == 1, "odd bf16 vectors are single elements");
        dst[0] = __uint_as_float(static_cast<uint32_t>(bits.chunk[0]) << 16);
    }
}

// dst += the values held in bits.
template <typename T, int N>
__device__ __forceinline__ void addUnpacked(Bits<T, N> const& bits, float (&dst)[N])
{
    float v[N];
    unpack(bits, v);
#pragma unroll
    for (int i = 0; i < N; ++i)
    {
        dst[i] += v[i];
    }
}

template <typename T, int N, bool Streamed = false>
__device__ __forceinline__ void loadFloats(T const* __restrict__ src, float (&dst)[N])
{
    unpack(loadBits<T, N, Streamed>(src), dst);
}

// dst += the N values at src.
template <typename T, int N, bool Streamed = false>
__device__ __forceinline__ void addFloats(T const* __restrict__ src, float (&dst)[N])
{
    float v[N];
    loadFloats<T, N, Streamed>(src, v);
#pragma unroll
    for (int i = 0; i < N; ++i)
    {
        dst[i] += v[i];
    }
}

template <typename T, int N>
__device__ __forceinline__ void storeFloats(T* __restrict__ dst, float const (&src)[N])
{
    using P = Pack<T, N>;
    using Raw = typename RawChunk<P::kChunkBytes>::type;
    Raw* raw = reinterpret_cast<Raw*>(dst);
#pragma unroll
    for (int c = 0; c < P::kChunks; ++c)
    {
        typename P::Chunk chunk;
#pragma unroll
        for (int i = 0; i < P::kPerChunk; ++i)
        {
            chunk.v[i] = fromFloat<T>(src[c * P::kPerChunk + i]);
        }
        Raw bits;
        memcpy(&bits, &chunk, sizeof(bits));
        __stcs(raw + c, bits);
    }
}

// Asks L2 to fetch the line holding `p` without waiting for it (no register is tied up): the loop over rows
// issues this for its next row, so DRAM keeps streaming while the current row is reduced and stored.
__device__ __forceinline__ void prefetchL2(void const* p)
{
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}

// Starts copying 16 bytes from global to shared memory without holding a register for them (cp.async, sm_80 and
// later; older GPUs copy synchronously). The copies a thread issues complete, for that thread, at waitCopies().
__device__ __forceinline__ void copyToSharedAsync(void* dst, void const* src)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(static_cast<unsigned>(__cvta_generic_to_shared(dst))),
        "l"(src)
        : "memory");
#else
    *static_cast<uint4*>(dst) = __ldcs(static_cast<uint4 const*>(src));
#endif
}

// Closes the group of copies issued so far.
__device__ __forceinline__ void commitCopies()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}

// Waits for every copy this thread has issued.
__device__ __forceinline__ void waitCopies()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group 0;" ::: "memory");
#endif
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

// Host side: calls launch(T{}, P{}) with the element types for activations `io` and parameters `param`
// (parameters are either fp32 or the activation type).
template <typename Launch>
cudaError_t dispatchTypes(Dtype io, Dtype param, Launch&& launch)
{
    bool const fp32Params = param == Dtype::kFloat32;
    switch (io)
    {
    case Dtype::kFloat32: return launch(float{}, float{});
    case Dtype::kFloat16: return fp32Params ? launch(__half{}, float{}) : launch(__half{}, __half{});
    case Dtype::kBFloat16:
        return fp32Params ? launch(__nv_bfloat16{}, float{}) : launch(__nv_bfloat16{}, __nv_bfloat16{});
    }
    return cudaErrorInvalidValue;
}

} // namespace pgx

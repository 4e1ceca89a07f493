#include "common/kernel_utils.cuh"
#include "plugins/bias_gelu/bias_gelu_kernel.h"

namespace pgx
{
namespace
{
constexpr int kBlock = 256;

// Reciprocal on the special-function unit (one instruction, <= 1 ulp): the IEEE-rounded __frcp_rn is a
// multi-instruction sequence with a slow path, which made 16-bit GELU instruction-bound.
__device__ __forceinline__ float approxRcp(float v)
{
    float r;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(v));
    return r;
}

// erf through Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7, below fp32 rounding of the result) with the
// hardware exp and reciprocal: the library erff costs enough instructions that 16-bit GELU became compute-bound.
__device__ __forceinline__ float fastErf(float v)
{
    float const a = fabsf(v);
    float const t = approxRcp(1.f + 0.3275911f * a);
    float const poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    float const r = 1.f - poly * __expf(-a * a);
    return copysignf(r, v);
}

// tanh(u) = 1 - 2 / (exp(2u) + 1): exact limits at +-inf, NaN stays NaN.
__device__ __forceinline__ float fastTanh(float u)
{
    return 1.f - __fdividef(2.f, __expf(2.f * u) + 1.f);
}

__device__ __forceinline__ float gelu(float v, bool tanhApproximation)
{
    if (tanhApproximation)
    {
        return 0.5f * v * (1.f + fastTanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    }
    return 0.5f * v * (1.f + fastErf(v * 0.7071067811865476f));
}

// Grid-stride over VEC-wide vectors; each thread asks L2 for its next vector before computing this one, so
// the memory system keeps a second vector per thread in flight while the GELU arithmetic runs.
template <typename T, typename P, int VEC>
__global__ void __launch_bounds__(kBlock) biasGelu(BiasGeluArgs const a)
{
    int64_t const vectors = a.n / VEC;
    int64_t const stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    // The bias column advances by a constant step per iteration; tracking it avoids a 64-bit modulo per vector.
    int64_t const biasStep = (stride * VEC) % a.biasSize;
    int64_t col = (v * VEC) % a.biasSize;
    T const* x = static_cast<T const*>(a.x);
    for (; v < vectors; v += stride)
    {
        float values[VEC];
        loadFloats<T, VEC, true>(x + v * VEC, values);
        if (v + stride < vectors)
        {
            prefetchL2(x + (v + stride) * VEC);
        }
        if (a.bias)
        {
            addFloats<P, VEC>(static_cast<P const*>(a.bias) + col, values);
        }
#pragma unroll
        for (int j = 0; j < VEC; ++j)
        {
            values[j] = gelu(values[j], a.tanhApproximation);
        }
        storeFloats<T, VEC>(static_cast<T*>(a.y) + v * VEC, values);
        col += biasStep;
        if (col >= a.biasSize)
        {
            col -= a.biasSize;
        }
    }
}

template <typename T, typename P>
cudaError_t launchTyped(BiasGeluArgs const& a, cudaStream_t stream)
{
    constexpr int kVec = 16 / sizeof(T);
    // Vectors must not straddle a bias period, and every pointer must allow 16-byte accesses.
    bool const vectorized = a.n % kVec == 0 && (a.bias == nullptr || a.biasSize % kVec == 0) && isAligned(a.x, 16)
        && isAligned(a.y, 16) && isAligned(a.bias, 16);
    int const vec = vectorized ? kVec : 1;
    int64_t const blocks = (a.n / vec + kBlock - 1) / kBlock;
    if (vectorized)
    {
        auto const kernel = biasGelu<T, P, kVec>;
        kernel<<<residentGrid(kernel, kBlock, blocks), kBlock, 0, stream>>>(a);
    }
    else
    {
        auto const kernel = biasGelu<T, P, 1>;
        kernel<<<residentGrid(kernel, kBlock, blocks), kBlock, 0, stream>>>(a);
    }
    return cudaGetLastError();
}
} // namespace

cudaError_t launchBiasGelu(BiasGeluArgs const& args, Dtype io, Dtype param, cudaStream_t stream)
{
    if (args.n <= 0 || args.biasSize <= 0)
    {
        return cudaSuccess;
    }
    return dispatchTypes(io, param,
        [&](auto t, auto p) { return launchTyped<decltype(t), decltype(p)>(args, stream); });
}
} // namespace pgx

#include "common/kernel_utils.cuh"
#include "plugins/bias_gelu/bias_gelu_kernel.h"

namespace pgx
{
namespace
{
constexpr int kBlock = 256;

// erf through Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7, below fp32 rounding of the result) with the
// hardware exp: the library erff costs enough instructions that fp16 GELU became compute-bound.
__device__ __forceinline__ float fastErf(float v)
{
    float const a = fabsf(v);
    float const t = __frcp_rn(1.f + 0.3275911f * a);
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

template <typename T, typename P, int VEC>
__global__ void __launch_bounds__(kBlock) biasGelu(BiasGeluArgs const a)
{
    int64_t const vectors = a.n / VEC;
    int64_t const stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    // The bias column advances by a constant step per iteration; tracking it avoids a 64-bit modulo per vector.
    int64_t const biasStep = (stride * VEC) % a.biasSize;
    int64_t col = (v * VEC) % a.biasSize;
    for (; v < vectors; v += stride)
    {
        float x[VEC];
        loadFloats<T, VEC>(static_cast<T const*>(a.x) + v * VEC, x);
        if (a.bias)
        {
            float b[VEC];
            loadFloats<P, VEC>(static_cast<P const*>(a.bias) + col, b);
#pragma unroll
            for (int j = 0; j < VEC; ++j)
            {
                x[j] += b[j];
            }
        }
#pragma unroll
        for (int j = 0; j < VEC; ++j)
        {
            x[j] = gelu(x[j], a.tanhApproximation);
        }
        storeFloats<T, VEC>(static_cast<T*>(a.y) + v * VEC, x);
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
    int const resident = residentBlocks(kBlock);
    int const grid = static_cast<int>(blocks < resident ? blocks : resident);
    if (vectorized)
    {
        biasGelu<T, P, kVec><<<grid, kBlock, 0, stream>>>(a);
    }
    else
    {
        biasGelu<T, P, 1><<<grid, kBlock, 0, stream>>>(a);
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
    bool const fp32Params = param == Dtype::kFloat32;
    switch (io)
    {
    case Dtype::kFloat32: return launchTyped<float, float>(args, stream);
    case Dtype::kFloat16:
        return fp32Params ? launchTyped<__half, float>(args, stream) : launchTyped<__half, __half>(args, stream);
    case Dtype::kBFloat16:
        return fp32Params ? launchTyped<__nv_bfloat16, float>(args, stream)
                          : launchTyped<__nv_bfloat16, __nv_bfloat16>(args, stream);
    }
    return cudaErrorInvalidValue;
}
} // namespace pgx

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

// 2^v on the special-function unit, flushing results below 2^-126 to zero: plain ex2.approx.f32 costs three more
// instructions to scale subnormal results, which GELU never needs (they multiply a value that is already ~0).
__device__ __forceinline__ float approxExp2(float v)
{
    float r;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(v));
    return r;
}

// gelu(v) = 0.5 v (1 + erf(v / sqrt(2))), erf through Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7,
// below fp32 rounding of the result) with the hardware exp2 and reciprocal, and the 1 / sqrt(2) scaling folded into
// the constants: 16-bit GELU does ~2x the arithmetic per byte of fp32, so every instruction shows in its bandwidth.
// +inf gives +inf and -inf NaN, as the reference formula does.
__device__ __forceinline__ float geluErf(float v)
{
    constexpr float kP = 0.3275911f * 0.7071067811865476f;
    constexpr float kMinusHalfLog2e = -0.5f * 1.4426950408889634f; // exp(-(v/sqrt2)^2) = 2^(v * v * this)
    float const t = approxRcp(1.f + kP * fabsf(v));
    float const poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    float const erfAbs = 1.f - poly * approxExp2(v * v * kMinusHalfLog2e);
    float const half = 0.5f * v;
    return half * copysignf(erfAbs, v) + half;
}

// The tanh approximation as v * sigmoid(2u), u = sqrt(2/pi) (v + 0.044715 v^3): 0.5 (1 + tanh(u)) = 1 / (1 + e^-2u).
// +inf gives +inf and -inf NaN (-inf * 0), as the reference formula does.
__device__ __forceinline__ float geluTanh(float v)
{
    constexpr float kScale = -2.f * 0.7978845608028654f * 1.4426950408889634f; // e^-2u = 2^(kScale (v + k v^3))
    float const exponent = v * (kScale + (kScale * 0.044715f) * (v * v));
    return v * approxRcp(1.f + approxExp2(exponent));
}

template <bool kTanh>
__device__ __forceinline__ float gelu(float v)
{
    return kTanh ? geluTanh(v) : geluErf(v);
}

// y = gelu(x + bias) for the VEC elements of vector v, whose bias starts at column `col`.
template <typename T, typename P, int VEC, bool kTanh>
__device__ __forceinline__ void geluVector(BiasGeluArgs const& a, Bits<T, VEC> const& xBits, int64_t v, int64_t col)
{
    float values[VEC];
    unpack(xBits, values);
    if (a.bias)
    {
        addFloats<P, VEC>(static_cast<P const*>(a.bias) + col, values);
    }
#pragma unroll
    for (int j = 0; j < VEC; ++j)
    {
        values[j] = gelu<kTanh>(values[j]);
    }
    storeFloats<T, VEC>(static_cast<T*>(a.y) + v * VEC, values);
}

// Grid-stride over VEC-wide vectors, UNROLL of them per thread per iteration (v, v + stride, ...); each thread loads
// its next UNROLL vectors into registers before computing the current ones, so loads are always in flight while the
// GELU arithmetic runs. Loads past the end read the last vector again (in bounds) and are never used.
template <typename T, typename P, int VEC, int UNROLL, bool kTanh>
__global__ void __launch_bounds__(kBlock) biasGelu(BiasGeluArgs const a)
{
    int64_t const vectors = a.n / VEC;
    int64_t const stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    int64_t const first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (first >= vectors)
    {
        return;
    }
    int64_t const last = vectors - 1;
    T const* const x = static_cast<T const*>(a.x);
    // Each bias column advances by a constant step per iteration; tracking it avoids a 64-bit modulo per vector.
    int64_t const biasStep = (UNROLL * stride * VEC) % a.biasSize;
    int64_t col[UNROLL];
    Bits<T, VEC> current[UNROLL];
#pragma unroll
    for (int u = 0; u < UNROLL; ++u)
    {
        int64_t const v = first + u * stride;
        col[u] = (v * VEC) % a.biasSize;
        current[u] = loadBits<T, VEC, true>(x + (v < last ? v : last) * VEC);
    }
    for (int64_t v = first; v < vectors; v += UNROLL * stride)
    {
        Bits<T, VEC> following[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u)
        {
            int64_t const next = v + (UNROLL + u) * stride;
            following[u] = loadBits<T, VEC, true>(x + (next < last ? next : last) * VEC);
        }
#pragma unroll
        for (int u = 0; u < UNROLL; ++u)
        {
            if (u == 0 || v + u * stride < vectors)
            {
                geluVector<T, P, VEC, kTanh>(a, current[u], v + u * stride, col[u]);
            }
            col[u] += biasStep;
            col[u] -= col[u] >= a.biasSize ? a.biasSize : 0;
            current[u] = following[u];
        }
    }
}

template <typename T, typename P, bool kTanh>
cudaError_t launchApproximation(BiasGeluArgs const& a, cudaStream_t stream)
{
    constexpr int kVec = 16 / sizeof(T);
    // 16-bit GELU does twice the arithmetic per byte of fp32: two vectors per iteration halve the loop's overhead per
    // element and double the bytes in flight (48 instead of 32 registers). Measured on an H200 (docs/benchmarks.md):
    // +1.5-2 points of copy bandwidth for fp16/bf16, -1 for fp32, which stays at one vector.
    constexpr int kUnroll = sizeof(T) == 2 ? 2 : 1;
    // Vectors must not straddle a bias period, and every pointer must allow 16-byte accesses.
    bool const vectorized = a.n % kVec == 0 && (a.bias == nullptr || a.biasSize % kVec == 0) && isAligned(a.x, 16)
        && isAligned(a.y, 16) && isAligned(a.bias, 16);
    int const vec = vectorized ? kVec : 1;
    int64_t const blocks = (a.n / vec + kBlock - 1) / kBlock;
    if (vectorized)
    {
        auto const kernel = biasGelu<T, P, kVec, kUnroll, kTanh>;
        kernel<<<residentGrid(kernel, kBlock, blocks), kBlock, 0, stream>>>(a);
    }
    else
    {
        auto const kernel = biasGelu<T, P, 1, kUnroll, kTanh>;
        kernel<<<residentGrid(kernel, kBlock, blocks), kBlock, 0, stream>>>(a);
    }
    return cudaGetLastError();
}

template <typename T, typename P>
cudaError_t launchTyped(BiasGeluArgs const& a, cudaStream_t stream)
{
    return a.tanhApproximation ? launchApproximation<T, P, true>(a, stream) : launchApproximation<T, P, false>(a, stream);
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

#include "common/kernel_utils.cuh"
#include "plugins/bias_gelu/bias_gelu_kernel.h"

#include <cstdint>

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
// the constants. Used for fp32 outputs. +inf gives +inf and -inf NaN, as the reference formula does.
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

// gelu(v) = v Phi(v) for 16-bit outputs, with Phi(-|v|) = 2^g(|v|) and g a degree-7 fit of log2 Phi(-a) on [0, 7]
// (trt_plugins/tools/fit_gelu_erf.py prints these coefficients and checks them). Over every finite fp16 input, and
// bf16 input with |v| <= 7, the fp32 value is within 0.03 ulp of the output type of exact GELU: after its one rounding
// the result is within 0.52 ulp of exact (0.5 is correct rounding). Below v = -7 bf16 values (< 1e-11) reach zero
// early. 7.1.26 above, as 1 + erf, cancels for negative v: 3.2 fp16 ulps off at v = -4, hundreds of bf16 ulps at
// v = -5.5. Taking Phi(v) = 1 - Phi(-v) for v >= 0 has no such cancellation, and costs 7 FMAs and one exp2 instead of
// a reciprocal, an exp2 and 11 other instructions. g falls to -inf as |v| grows (negative leading coefficient), so
// +inf gives +inf and -inf NaN (-inf * 0), as the reference formula does.
__device__ __forceinline__ float geluErfFit(float v)
{
    float const a = fabsf(v);
    float const g = -1.00001395f
        + a * (-1.15103567f
            + a * (-0.458964378f
                + a * (-0.0535012744f
                    + a * (0.00830320269f + a * (-0.00088321208f + a * (5.61530142e-05f + a * -1.58820217e-06f))))));
    float const phiBelow = approxExp2(g); // Phi(-|v|)
    return v * (v >= 0.f ? 1.f - phiBelow : phiBelow);
}

// The tanh approximation as v * sigmoid(2u), u = sqrt(2/pi) (v + 0.044715 v^3): 0.5 (1 + tanh(u)) = 1 / (1 + e^-2u).
// +inf gives +inf and -inf NaN (-inf * 0), as the reference formula does.
__device__ __forceinline__ float geluTanh(float v)
{
    constexpr float kScale = -2.f * 0.7978845608028654f * 1.4426950408889634f; // e^-2u = 2^(kScale (v + k v^3))
    float const exponent = v * (kScale + (kScale * 0.044715f) * (v * v));
    return v * approxRcp(1.f + approxExp2(exponent));
}

// The exact form follows the output type: the fitted one is within 0.03 ulp of a 16-bit result, not of an fp32 one.
template <typename T, bool kTanh>
__device__ __forceinline__ float gelu(float v)
{
    if (kTanh)
    {
        return geluTanh(v);
    }
    return sizeof(T) == 2 ? geluErfFit(v) : geluErf(v);
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
        values[j] = gelu<T, kTanh>(values[j]);
    }
    storeFloats<T, VEC>(static_cast<T*>(a.y) + v * VEC, values);
}

// The bias column of element `element`: 32-bit division is a few instructions, 64-bit a long software sequence.
__device__ __forceinline__ int64_t biasColumn(int64_t element, int64_t biasSize)
{
    if (((element | biasSize) >> 32) == 0)
    {
        return static_cast<uint32_t>(element) % static_cast<uint32_t>(biasSize);
    }
    return element % biasSize;
}

// Each block takes a tile of UNROLL * blockDim.x VEC-wide vectors, a thread the vectors threadIdx.x,
// threadIdx.x + blockDim.x, ... of it (so a warp's accesses are consecutive), and every load of a thread is issued
// before any of its values is used. The grid has a block per tile: blocks that finish give their multiprocessor to
// new ones, whose loads then overlap the finishing blocks' arithmetic and stores. Only a grid too large to launch
// strides over further tiles. Loads past the end read the last vector again (in bounds) and are never used.
template <typename T, typename P, int VEC, int UNROLL, bool kTanh>
__global__ void __launch_bounds__(kBlock) biasGelu(BiasGeluArgs const a)
{
    int64_t const vectors = a.n / VEC;
    int64_t const last = vectors - 1;
    int64_t const tile = static_cast<int64_t>(UNROLL) * blockDim.x;
    T const* const x = static_cast<T const*>(a.x);
    // The bias column advances by a constant step from one of a thread's vectors to the next.
    int64_t const step = biasColumn(static_cast<int64_t>(blockDim.x) * VEC, a.biasSize);
    for (int64_t first = blockIdx.x * tile + threadIdx.x; first < vectors; first += gridDim.x * tile)
    {
        Bits<T, VEC> bits[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u)
        {
            int64_t const v = first + u * static_cast<int64_t>(blockDim.x);
            bits[u] = loadBits<T, VEC, true>(x + (v < last ? v : last) * VEC);
        }
        int64_t col = biasColumn(first * VEC, a.biasSize);
#pragma unroll
        for (int u = 0; u < UNROLL; ++u)
        {
            int64_t const v = first + u * static_cast<int64_t>(blockDim.x);
            if (v < vectors)
            {
                geluVector<T, P, VEC, kTanh>(a, bits[u], v, col);
            }
            col += step;
            col -= col >= a.biasSize ? a.biasSize : 0;
        }
    }
}

template <typename T, typename P, bool kTanh>
cudaError_t launchApproximation(BiasGeluArgs const& a, cudaStream_t stream)
{
    constexpr int kVec = 16 / sizeof(T);
    // Vectors per thread. Measured on an H200 (docs/benchmarks.md), fraction of copy bandwidth: 16-bit 4 vectors 0.97,
    // 8 vectors 0.96; fp32 1 vector 1.01, 2 or 4 vectors 0.97. The persistent grid this replaced, with each thread's
    // next vectors loaded a loop iteration ahead, reached 0.88 (16-bit) and 0.93 (fp32).
    constexpr int kUnroll = sizeof(T) == 2 ? 4 : 1;
    // Vectors must not straddle a bias period, and every pointer must allow 16-byte accesses.
    bool const vectorized = a.n % kVec == 0 && (a.bias == nullptr || a.biasSize % kVec == 0) && isAligned(a.x, 16)
        && isAligned(a.y, 16) && isAligned(a.bias, 16);
    int const vec = vectorized ? kVec : 1;
    int64_t const tiles = (a.n / vec + kBlock * kUnroll - 1) / (kBlock * kUnroll);
    int const grid = static_cast<int>(tiles < INT32_MAX ? tiles : INT32_MAX);
    if (vectorized)
    {
        biasGelu<T, P, kVec, kUnroll, kTanh><<<grid, kBlock, 0, stream>>>(a);
    }
    else
    {
        biasGelu<T, P, 1, kUnroll, kTanh><<<grid, kBlock, 0, stream>>>(a);
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

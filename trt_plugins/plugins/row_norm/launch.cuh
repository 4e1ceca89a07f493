// From a plan to a kernel: the launcher fills DeviceLimits once per device and operand set, asks planRowNorm
// (plan.cpp) which variant and geometry to use, and launches the instantiation the plan names. Included by one
// translation unit per activation type (launch_fp32.cu, ...), so that the build compiles them in parallel.
#pragma once
#include "plugins/row_norm/kernels.cuh"
#include "plugins/row_norm/plan.h"
#include "plugins/row_norm/row_norm.h"

#include <mutex>

namespace pgx
{
namespace row_norm
{
using RowKernel = void (*)(KernelArgs const, int const);

#ifdef PGX_TUNING
// Tuning builds only (POLYGRAPHY_EXT_TUNING): the variant bench/plugins.py --variants asked for, kCount for the plan's.
RowNormVariant tunedVariant();
#endif

template <typename T, typename P, typename Ops, RowNormVariant Variant, bool kPacked, Feed kFeed>
constexpr RowKernel onChip()
{
    constexpr int kVec = Variant == RowNormVariant::kScalarHeld ? 1 : 16 / static_cast<int>(sizeof(T));
    return rowNormOnChip<T, P, Ops, kVec, rowNormItems(Variant, kVec), kPacked, kFeed>;
}

template <typename T, typename P, typename Ops, RowNormVariant Variant, bool kPacked = false>
constexpr RowKernel light()
{
    constexpr int kVec = 16 / static_cast<int>(sizeof(T));
    return rowNormLight<T, P, Ops, kVec, rowNormItems(Variant, kVec), kPacked, rowNormMaxBlock(Variant, kVec)>;
}

// The instantiation `variant` names for these types and operands at `vec` elements per access; null where the
// variant does not exist for them (rows held packed or loaded ahead are 16-bit x alone; staged rows 16-bit with skip).
template <typename T, typename P, typename Ops>
RowKernel kernelOf(RowNormVariant variant, int vec)
{
    constexpr bool kSixteenBit = sizeof(T) == 2;
    constexpr bool kPackable = kSixteenBit && !Ops::kSkip;
    constexpr bool kStageable = kSixteenBit && Ops::kSkip;
#ifdef PGX_TUNING
    constexpr bool kTuning = true;
#else
    constexpr bool kTuning = false;
#endif
    // Light variants are built where plan.cpp's lightChoice can pick them (tuning builds: wherever they exist, to
    // measure them): 2 vectors but for 16-bit x alone, 3 for 16-bit rows with skip, 4 for rows with skip, 8 as fp32
    // (fp32 only: 64 fp32 values of a 16-bit row exceed 85 registers) with bias, 3 raw vectors for 16-bit x alone.
    constexpr bool kLight2 = kTuning || !kPackable;
    constexpr bool kLight3 = kTuning || kStageable;
    constexpr bool kLight4 = kTuning || Ops::kSkip;
    constexpr bool kLight8 = !kSixteenBit && (kTuning || Ops::kBias);
    constexpr bool kLightPacked3 = !Ops::kSkip && (kTuning || kSixteenBit);
    using V = RowNormVariant;
    switch (variant)
    {
    case V::kScalarHeld: return onChip<T, P, Ops, V::kScalarHeld, false, Feed::kDirect>();
    case V::kHeld: return onChip<T, P, Ops, V::kHeld, false, Feed::kDirect>();
    case V::kHeldFewer: return onChip<T, P, Ops, V::kHeldFewer, false, Feed::kDirect>();
    case V::kStaged:
        if constexpr (kStageable)
        {
            return onChip<T, P, Ops, V::kStaged, false, Feed::kStaged>();
        }
        break;
    case V::kStagedFewer:
        if constexpr (kStageable)
        {
            return onChip<T, P, Ops, V::kStagedFewer, false, Feed::kStaged>();
        }
        break;
    case V::kPacked:
        if constexpr (kPackable)
        {
            return onChip<T, P, Ops, V::kPacked, true, Feed::kDirect>();
        }
        break;
    case V::kPackedFewer:
        if constexpr (kPackable)
        {
            return onChip<T, P, Ops, V::kPackedFewer, true, Feed::kDirect>();
        }
        break;
    case V::kPackedWarpFilling:
        if constexpr (kPackable)
        {
            return onChip<T, P, Ops, V::kPackedWarpFilling, true, Feed::kDirect>();
        }
        break;
    case V::kAhead:
        if constexpr (kPackable)
        {
            return onChip<T, P, Ops, V::kAhead, true, Feed::kAhead>();
        }
        break;
    case V::kAheadFewer:
        if constexpr (kPackable)
        {
            return onChip<T, P, Ops, V::kAheadFewer, true, Feed::kAhead>();
        }
        break;
    case V::kLight2:
        if constexpr (kLight2)
        {
            return light<T, P, Ops, V::kLight2>();
        }
        break;
    case V::kLight3:
        if constexpr (kLight3)
        {
            return light<T, P, Ops, V::kLight3>();
        }
        break;
    case V::kLight4:
        if constexpr (kLight4)
        {
            return light<T, P, Ops, V::kLight4>();
        }
        break;
    case V::kLight8:
        if constexpr (kLight8)
        {
            return light<T, P, Ops, V::kLight8>();
        }
        break;
    case V::kLightPacked3:
        if constexpr (kLightPacked3)
        {
            return light<T, P, Ops, V::kLightPacked3, true>();
        }
        break;
    case V::kLightPacked4:
        if constexpr (!Ops::kSkip)
        {
            return light<T, P, Ops, V::kLightPacked4, true>();
        }
        break;
    case V::kLightPacked8:
        if constexpr (!Ops::kSkip)
        {
            return light<T, P, Ops, V::kLightPacked8, true>();
        }
        break;
    case V::kStreaming:
        return vec == 1 ? rowNormStreaming<T, P, Ops, 1> : rowNormStreaming<T, P, Ops, 16 / sizeof(T)>;
    case V::kCount: break;
    }
    return nullptr;
}

// True for the variants that exist at `vec` elements per access (the 1-element path has two).
inline bool usesWidth(RowNormVariant variant, int vec)
{
    bool const scalar = variant == RowNormVariant::kScalarHeld;
    return variant == RowNormVariant::kStreaming || scalar == (vec == 1);
}

inline cudaError_t readDeviceLimits(int device, DeviceLimits& limits)
{
    struct Attribute
    {
        cudaDeviceAttr attribute;
        int64_t* wide;
        int32_t* narrow;
    };
    Attribute const attributes[] = {
        {cudaDevAttrComputeCapabilityMajor, nullptr, &limits.computeMajor},
        {cudaDevAttrComputeCapabilityMinor, nullptr, &limits.computeMinor},
        {cudaDevAttrMultiProcessorCount, nullptr, &limits.multiprocessors},
        {cudaDevAttrMaxThreadsPerMultiProcessor, nullptr, &limits.threadsPerMultiprocessor},
        {cudaDevAttrMaxRegistersPerMultiprocessor, nullptr, &limits.registersPerMultiprocessor},
        {cudaDevAttrMaxRegistersPerBlock, nullptr, &limits.registersPerBlock},
        {cudaDevAttrMaxSharedMemoryPerMultiprocessor, &limits.sharedBytesPerMultiprocessor, nullptr},
        {cudaDevAttrMaxSharedMemoryPerBlockOptin, &limits.sharedBytesPerBlockOptin, nullptr},
        {cudaDevAttrReservedSharedMemoryPerBlock, &limits.reservedSharedBytesPerBlock, nullptr},
    };
    for (Attribute const& a : attributes)
    {
        int value = 0;
        cudaError_t const status = cudaDeviceGetAttribute(&value, a.attribute, device);
        if (status != cudaSuccess)
        {
            return status;
        }
        if (a.wide)
        {
            *a.wide = value;
        }
        else
        {
            *a.narrow = value;
        }
    }
    return cudaSuccess;
}

// The limits of `device` with the resources of every variant built for T, P and Ops at the access width
// `vectorized` selects; read once per device (the registers a kernel takes are the compiler's, per architecture).
template <typename T, typename P, typename Ops>
cudaError_t deviceLimits(int device, bool vectorized, DeviceLimits const*& out)
{
    constexpr int kDevices = 64;
    static std::mutex mutex;
    static DeviceLimits cache[2][kDevices];
    static bool ready[2][kDevices];
    if (device < 0 || device >= kDevices)
    {
        return cudaErrorInvalidDevice;
    }
    std::lock_guard<std::mutex> lock(mutex);
    DeviceLimits& limits = cache[vectorized][device];
    if (!ready[vectorized][device])
    {
        limits = DeviceLimits{};
        cudaError_t status = readDeviceLimits(device, limits);
        int const vec = vectorized ? 16 / static_cast<int>(sizeof(T)) : 1;
        for (int v = 0; status == cudaSuccess && v < static_cast<int>(RowNormVariant::kCount); ++v)
        {
            RowNormVariant const variant = static_cast<RowNormVariant>(v);
            RowKernel const kernel = usesWidth(variant, vec) ? kernelOf<T, P, Ops>(variant, vec) : nullptr;
            if (kernel)
            {
                cudaFuncAttributes attributes{};
                status = cudaFuncGetAttributes(&attributes, kernel);
                limits.kernels[v] = {attributes.numRegs, static_cast<int32_t>(attributes.sharedSizeBytes)};
            }
        }
        if (status != cudaSuccess)
        {
            return status;
        }
        ready[vectorized][device] = true;
    }
    out = &limits;
    return cudaSuccess;
}

template <typename T, typename P, typename Ops>
cudaError_t launchPlanned(KernelArgs const& k, bool vectorized, cudaStream_t stream)
{
    int device = 0;
    cudaError_t status = cudaGetDevice(&device);
    DeviceLimits const* limits = nullptr;
    if (status == cudaSuccess)
    {
        status = deviceLimits<T, P, Ops>(device, vectorized, limits);
    }
    if (status != cudaSuccess)
    {
        return status;
    }
    RowNormProblem const problem{
        k.a.rows, k.a.cols, static_cast<int32_t>(sizeof(T)), vectorized, Ops::kSkip, Ops::kBias, k.a.rms};
#ifdef PGX_TUNING
    RowNormVariant const asked = tunedVariant();
    RowNormPlan const plan
        = asked == RowNormVariant::kCount ? planRowNorm(problem, *limits) : planRowNormAs(problem, *limits, asked);
#else
    RowNormPlan const plan = planRowNorm(problem, *limits);
#endif
    RowKernel const kernel = kernelOf<T, P, Ops>(plan.variant, plan.vec);
    if (kernel == nullptr || plan.grid <= 0)
    {
        return cudaErrorInvalidConfiguration;
    }
    // Above 48 KiB a kernel must opt in to dynamic shared memory (per device; repeating it is cheap).
    if (plan.sharedBytes > 48 * 1024)
    {
        status = cudaFuncSetAttribute(
            kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(plan.sharedBytes));
        if (status != cudaSuccess)
        {
            return status;
        }
    }
    kernel<<<static_cast<unsigned>(plan.grid), plan.threads, static_cast<size_t>(plan.sharedBytes), stream>>>(
        k, plan.lanesPerRow);
    return cudaGetLastError();
}

template <typename T, typename P>
cudaError_t launchTyped(KernelArgs const& k, cudaStream_t stream)
{
    RowNormArgs const& a = k.a;
    // Every pointer, and every row start (cols * sizeof(T)), must allow 16-byte accesses; param vectors of
    // 16 / sizeof(T) elements are 16 or 32 bytes and are moved in 16-byte chunks, so 16-byte alignment covers them.
    bool const vectorized = a.cols % (16 / sizeof(T)) == 0 && isAligned(a.x, 16) && isAligned(a.skip, 16)
        && isAligned(a.y, 16) && isAligned(a.sum, 16) && isAligned(a.gamma, 16) && isAligned(a.beta, 16)
        && isAligned(a.bias, 16);
    if (a.skip == nullptr)
    {
        return a.bias == nullptr && a.sum == nullptr ? launchPlanned<T, P, XAlone>(k, vectorized, stream)
                                                      : cudaErrorInvalidValue;
    }
    if (a.bias != nullptr)
    {
        return a.sum != nullptr ? launchPlanned<T, P, Operands<true, true, true>>(k, vectorized, stream)
                                : launchPlanned<T, P, Operands<true, true, false>>(k, vectorized, stream);
    }
    return a.sum != nullptr ? launchPlanned<T, P, Operands<true, false, true>>(k, vectorized, stream)
                            : launchPlanned<T, P, Operands<true, false, false>>(k, vectorized, stream);
}

// The launch for activations T and parameters of type `param` (T or fp32); one per activation type, in its own
// translation unit.
cudaError_t launchFloat32(KernelArgs const& k, Dtype param, cudaStream_t stream);
cudaError_t launchFloat16(KernelArgs const& k, Dtype param, cudaStream_t stream);
cudaError_t launchBFloat16(KernelArgs const& k, Dtype param, cudaStream_t stream);
} // namespace row_norm
} // namespace pgx

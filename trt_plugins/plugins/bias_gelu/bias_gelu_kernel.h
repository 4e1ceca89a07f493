#pragma once
#include "common/dtype.h"

#include <cuda_runtime.h>

#include <cstdint>

namespace pgx
{
struct BiasGeluArgs
{
    void const* x{};    // [n], io type
    void const* bias{}; // optional, [biasSize], param type, broadcast over the trailing biasSize elements
    void* y{};          // [n], io type
    int64_t n{};
    int64_t biasSize{1};
    bool tanhApproximation{};
};

cudaError_t launchBiasGelu(BiasGeluArgs const& args, Dtype io, Dtype param, cudaStream_t stream);
} // namespace pgx

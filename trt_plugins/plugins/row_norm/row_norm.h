// One kernel family serves LayerNorm, SkipLayerNorm and RMSNorm: they differ only in which optional inputs
// are present (skip, bias, beta), whether the residual sum is written, and whether the mean is subtracted.
#pragma once
#include "common/dtype.h"

#include <cuda_runtime.h>

#include <cstdint>

namespace pgx
{
struct RowNormArgs
{
    void const* x{};     // [rows, cols], io type
    void const* skip{};  // optional, like x
    void const* bias{};  // optional, [cols], param type; added to x (+ skip) before normalizing
    void const* gamma{}; // [cols], param type
    void const* beta{};  // optional, [cols], param type
    void* y{};           // [rows, cols], io type
    void* sum{};         // optional, [rows, cols], io type: x + skip (+ bias), the residual stream
    int64_t rows{};
    int64_t cols{};
    float epsilon{};
    bool rms{}; // RMSNorm: no mean subtraction, no beta
};

// Chooses the vector width from the alignment of every pointer and of cols, then the kernel variant and geometry by
// planRowNorm (plan.h) from the problem and the device's limits, and launches it.
cudaError_t launchRowNorm(RowNormArgs const& args, Dtype io, Dtype param, cudaStream_t stream);
} // namespace pgx

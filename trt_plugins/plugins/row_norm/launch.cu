// The row-norm entry point: to the translation unit of the activation type (launch.cuh has the plan-to-kernel switch).
#include "plugins/row_norm/launch.cuh"

namespace pgx
{
cudaError_t launchRowNorm(RowNormArgs const& args, Dtype io, Dtype param, cudaStream_t stream)
{
    if (args.rows <= 0 || args.cols <= 0)
    {
        return cudaSuccess;
    }
    row_norm::KernelArgs const k{args, static_cast<float>(1.0 / static_cast<double>(args.cols))};
    switch (io)
    {
    case Dtype::kFloat32: return row_norm::launchFloat32(k, param, stream);
    case Dtype::kFloat16: return row_norm::launchFloat16(k, param, stream);
    case Dtype::kBFloat16: return row_norm::launchBFloat16(k, param, stream);
    }
    return cudaErrorInvalidValue;
}
} // namespace pgx

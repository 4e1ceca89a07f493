// Row-norm kernels with fp16 activations (parameters fp16 or fp32).
#include "plugins/row_norm/launch.cuh"

namespace pgx
{
namespace row_norm
{
cudaError_t launchFloat16(KernelArgs const& k, Dtype param, cudaStream_t stream)
{
    return param == Dtype::kFloat32 ? launchTyped<__half, float>(k, stream) : launchTyped<__half, __half>(k, stream);
}
} // namespace row_norm
} // namespace pgx

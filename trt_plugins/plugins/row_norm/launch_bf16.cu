// Row-norm kernels with bf16 activations (parameters bf16 or fp32).
#include "plugins/row_norm/launch.cuh"

namespace pgx
{
namespace row_norm
{
cudaError_t launchBFloat16(KernelArgs const& k, Dtype param, cudaStream_t stream)
{
    return param == Dtype::kFloat32 ? launchTyped<__nv_bfloat16, float>(k, stream) : launchTyped<__nv_bfloat16, __nv_bfloat16>(k, stream);
}
} // namespace row_norm
} // namespace pgx

// Row-norm kernels with fp32 activations (parameters fp32).
#include "plugins/row_norm/launch.cuh"

namespace pgx
{
namespace row_norm
{
cudaError_t launchFloat32(KernelArgs const& k, Dtype param, cudaStream_t stream)
{
    static_cast<void>(param); // fp32 activations take fp32 parameters (the plugins check it)
    return launchTyped<float, float>(k, stream);
}
} // namespace row_norm
} // namespace pgx

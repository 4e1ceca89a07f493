#include "common/kernel_utils.cuh"

namespace pgx
{
int residentBlocks(int threads)
{
    int device = 0;
    int sms = 0;
    int threadsPerSm = 0;
    if (cudaGetDevice(&device) != cudaSuccess
        || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess
        || cudaDeviceGetAttribute(&threadsPerSm, cudaDevAttrMaxThreadsPerMultiProcessor, device) != cudaSuccess)
    {
        cudaGetLastError(); // clear it: the launch that follows reports a real failure itself
        return 1024;
    }
    int const perSm = threadsPerSm / threads > 0 ? threadsPerSm / threads : 1;
    return sms * perSm;
}
} // namespace pgx

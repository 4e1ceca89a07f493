// The row-norm entry point: to the translation unit of the activation type (launch.cuh has the plan-to-kernel switch).
#include "plugins/row_norm/launch.cuh"

#ifdef PGX_TUNING
#include <atomic>
#include <cstring>
#endif

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

#ifdef PGX_TUNING
namespace pgx
{
namespace row_norm
{
namespace
{
std::atomic<int> gTunedVariant{static_cast<int>(RowNormVariant::kCount)};
} // namespace

RowNormVariant tunedVariant()
{
    return static_cast<RowNormVariant>(gTunedVariant.load(std::memory_order_relaxed));
}
} // namespace row_norm
} // namespace pgx

// Exported by tuning builds only: every later row-norm launch takes the light variant `name` ("light-2", ...) where it
// holds the row, or the plan's for "" or null. Returns 0, or -1 for a name that is no light variant.
extern "C" __attribute__((visibility("default"))) int pgxTuneRowNormVariant(char const* name)
{
    using pgx::RowNormVariant;
    int chosen = static_cast<int>(RowNormVariant::kCount);
    if (name != nullptr && name[0] != '\0')
    {
        chosen = -1;
        for (RowNormVariant v : {RowNormVariant::kLight2, RowNormVariant::kLight3, RowNormVariant::kLight4,
                 RowNormVariant::kLight8, RowNormVariant::kLightPacked3, RowNormVariant::kLightPacked4,
                 RowNormVariant::kLightPacked8})
        {
            if (std::strcmp(name, pgx::rowNormVariantName(v)) == 0)
            {
                chosen = static_cast<int>(v);
            }
        }
        if (chosen < 0)
        {
            return -1;
        }
    }
    pgx::row_norm::gTunedVariant.store(chosen, std::memory_order_relaxed);
    return 0;
}
#endif

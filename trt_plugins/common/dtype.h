// Element types the kernels support, independent of TensorRT's headers so kernels build and test alone.
#pragma once

namespace pgx
{
enum class Dtype
{
    kFloat32,
    kFloat16,
    kBFloat16,
};
} // namespace pgx

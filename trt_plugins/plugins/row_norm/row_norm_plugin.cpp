#include "plugins/row_norm/row_norm_plugin.h"

#include "common/logging.h"
#include "plugins/row_norm/row_norm.h"

#include <cmath>

using namespace nvinfer1;

namespace pgx
{
void RowNormPlugin::readNormFields(FieldReader& reader, char const* epsilonName, char const* axisName)
{
    reader.read(epsilonName, mEpsilon);
    reader.read(axisName, mAxis);
    if (!(mEpsilon >= 0.f) || !std::isfinite(mEpsilon))
    {
        reader.fail(std::string("field '") + epsilonName + "' must be finite and >= 0, got " + std::to_string(mEpsilon));
    }
}

bool RowNormPlugin::checkShapes(Dims64 const* inputs, int32_t nbInputs, std::string& error) const
{
    Dims64 const& x = inputs[0];
    int32_t const axis = normalizeAxis(mAxis, x.nbDims);
    if (axis < 0)
    {
        error = "axis " + std::to_string(mAxis) + " is out of range for an input of rank " + std::to_string(x.nbDims);
        return false;
    }
    RowNormLayout const slots = layout(nbInputs);
    if (slots.skip >= 0)
    {
        Dims64 const& skip = inputs[slots.skip];
        bool same = skip.nbDims == x.nbDims;
        for (int32_t i = 0; same && i < x.nbDims; ++i)
        {
            same = x.d[i] < 0 || skip.d[i] < 0 || x.d[i] == skip.d[i];
        }
        if (!same)
        {
            error = "skip shape " + shapeString(skip) + " differs from input shape " + shapeString(x);
            return false;
        }
    }
    int64_t const cols = volume(x, axis, x.nbDims);
    int32_t const params[] = {slots.gamma, slots.beta, slots.bias};
    char const* const names[] = {"gamma", "beta", "bias"};
    for (int32_t p = 0; p < 3; ++p)
    {
        if (params[p] < 0)
        {
            continue;
        }
        int64_t const n = volume(inputs[params[p]], 0, inputs[params[p]].nbDims);
        if (cols >= 0 && n >= 0 && n != cols)
        {
            error = std::string(names[p]) + " has " + std::to_string(n) + " elements but the normalized dims "
                + "of input " + shapeString(x) + " from axis " + std::to_string(mAxis) + " hold " + std::to_string(cols);
            return false;
        }
    }
    return true;
}

int32_t RowNormPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept
{
    try
    {
        Dims64 dims[8];
        for (int32_t i = 0; i < mNbInputs; ++i)
        {
            dims[i] = inputDesc[i].dims;
        }
        std::string error;
        if (!checkShapes(dims, mNbInputs, error))
        {
            reportError("enqueue: " + error);
            return -1;
        }
        RowNormLayout const slots = layout(mNbInputs);
        Dtype io;
        Dtype param;
        if (!toDtype(inputDesc[0].type, io) || !toDtype(inputDesc[slots.gamma].type, param)
            || outputDesc[0].type != inputDesc[0].type)
        {
            reportError("enqueue: unsupported tensor types");
            return -1;
        }
        Dims64 const& x = inputDesc[0].dims;
        int32_t const axis = normalizeAxis(mAxis, x.nbDims);
        RowNormArgs args;
        args.rows = volume(x, 0, axis);
        args.cols = volume(x, axis, x.nbDims);
        args.x = inputs[0];
        args.skip = slots.skip >= 0 ? inputs[slots.skip] : nullptr;
        args.gamma = inputs[slots.gamma];
        args.beta = slots.beta >= 0 ? inputs[slots.beta] : nullptr;
        args.bias = slots.bias >= 0 ? inputs[slots.bias] : nullptr;
        args.y = outputs[0];
        args.sum = slots.sumOutput >= 0 ? outputs[slots.sumOutput] : nullptr;
        args.epsilon = mEpsilon;
        args.rms = slots.rms;
        cudaError_t const status = launchRowNorm(args, io, param, stream);
        if (status != cudaSuccess)
        {
            reportError(std::string("kernel launch failed: ") + cudaGetErrorString(status));
            return -1;
        }
        return 0;
    }
    catch (...)
    {
        return -1;
    }
}
} // namespace pgx

#include "common/plugin_base.h"

#include "common/logging.h"

#include <plugin_specs.h>

using namespace nvinfer1;

namespace pgx
{
IPluginCapability* PluginBase::getCapabilityInterface(PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

char const* PluginBase::getPluginNamespace() const noexcept
{
    return specs::kNamespace;
}

void PluginBase::reportError(std::string const& message) const
{
    logError(std::string(getPluginName()) + ": " + message);
}

bool PluginBase::checkCounts(int32_t nbInputs, int32_t nbOutputs, char const* where) const
{
    if (!acceptsInputCount(nbInputs) || nbOutputs != getNbOutputs())
    {
        reportError(std::string(where) + ": got " + std::to_string(nbInputs) + " inputs and "
            + std::to_string(nbOutputs) + " outputs, which do not match the plugin's fields (expected "
            + std::to_string(getNbOutputs()) + " outputs)");
        return false;
    }
    return true;
}

int32_t PluginBase::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        if (in == nullptr || out == nullptr || !checkCounts(nbInputs, nbOutputs, "configurePlugin"))
        {
            return -1;
        }
        Dims64 dims[8];
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            dims[i] = in[i].desc.dims;
        }
        std::string error;
        if (!checkShapes(dims, nbInputs, error))
        {
            reportError(error);
            return -1;
        }
        mNbInputs = nbInputs;
        return 0;
    }
    catch (...)
    {
        return -1;
    }
}

int32_t PluginBase::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (outputTypes == nullptr || inputTypes == nullptr || nbInputs < 1 || nbOutputs != getNbOutputs())
    {
        return -1;
    }
    for (int32_t i = 0; i < nbOutputs; ++i)
    {
        outputTypes[i] = inputTypes[0];
    }
    return 0;
}

int32_t PluginBase::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
    int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& /*exprBuilder*/) noexcept
{
    if (inputs == nullptr || outputs == nullptr || !checkCounts(nbInputs, nbOutputs, "getOutputShapes"))
    {
        return -1;
    }
    for (int32_t i = 0; i < nbOutputs; ++i)
    {
        outputs[i] = inputs[0];
    }
    return 0;
}

bool PluginBase::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (inOut == nullptr || pos < 0 || pos >= nbInputs + nbOutputs || !acceptsInputCount(nbInputs)
        || nbOutputs != getNbOutputs())
    {
        return false;
    }
    PluginTensorDesc const& desc = inOut[pos].desc;
    if (desc.format != TensorFormat::kLINEAR)
    {
        return false;
    }
    Dtype unused;
    if (pos == 0)
    {
        return toDtype(desc.type, unused);
    }
    int32_t const firstParam = dataInputCount();
    bool const isParam = pos < nbInputs && pos >= firstParam;
    if (!isParam)
    {
        return desc.type == inOut[0].desc.type;
    }
    // Parameters share one type: the data type, or fp32 (one kernel instantiation per pair, not per tensor).
    if (pos == firstParam)
    {
        return desc.type == inOut[0].desc.type || desc.type == DataType::kFLOAT;
    }
    return desc.type == inOut[firstParam].desc.type;
}

int32_t PluginBase::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        if (in == nullptr || out == nullptr || !checkCounts(nbInputs, nbOutputs, "onShapeChange"))
        {
            return -1;
        }
        Dims64 dims[8];
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            dims[i] = in[i].dims;
        }
        std::string error;
        if (!checkShapes(dims, nbInputs, error))
        {
            reportError(error);
            return -1;
        }
        mNbInputs = nbInputs;
        return 0;
    }
    catch (...)
    {
        return -1;
    }
}

IPluginV3* PluginBase::attachToContext(IPluginResourceContext* /*context*/) noexcept
{
    return clone();
}

PluginFieldCollection const* PluginBase::getFieldsToSerialize() noexcept
{
    try
    {
        mFieldWriter.clear();
        writeFields(mFieldWriter);
        return mFieldWriter.collection();
    }
    catch (...)
    {
        reportError("out of memory while serializing fields");
        return nullptr;
    }
}

bool toDtype(DataType type, Dtype& out)
{
    switch (type)
    {
    case DataType::kFLOAT: out = Dtype::kFloat32; return true;
    case DataType::kHALF: out = Dtype::kFloat16; return true;
    case DataType::kBF16: out = Dtype::kBFloat16; return true;
    default: return false;
    }
}

int64_t volume(Dims64 const& dims, int32_t from, int32_t to)
{
    int64_t v = 1;
    for (int32_t i = from; i < to; ++i)
    {
        if (dims.d[i] < 0)
        {
            return -1;
        }
        v *= dims.d[i];
    }
    return v;
}

int32_t normalizeAxis(int32_t axis, int32_t nbDims)
{
    int32_t const a = axis < 0 ? axis + nbDims : axis;
    return a >= 0 && a < nbDims ? a : -1;
}

std::string shapeString(Dims64 const& dims)
{
    std::string s = "(";
    for (int32_t i = 0; i < dims.nbDims; ++i)
    {
        s += (i ? ", " : "") + std::to_string(dims.d[i]);
    }
    return s + ")";
}
} // namespace pgx

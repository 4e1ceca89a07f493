// What the four plugins share as IPluginV3 implementations: capability plumbing, the type/format rules
// (linear layout; fp32, fp16 or bf16 data; parameters in the data type or fp32), outputs shaped and typed
// like input 0, and field serialization through FieldWriter.
#pragma once
#include "common/dtype.h"
#include "common/fields.h"

#include <NvInferRuntime.h>

#include <string>

namespace pgx
{
class PluginBase : public nvinfer1::IPluginV3,
                   public nvinfer1::IPluginV3OneCore,
                   public nvinfer1::IPluginV3OneBuild,
                   public nvinfer1::IPluginV3OneRuntime
{
public:
    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;

    // IPluginV3OneCore
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

protected:
    // Leading inputs that carry activations (same type as input 0); the inputs after them are parameters.
    virtual int32_t dataInputCount() const = 0;
    virtual bool acceptsInputCount(int32_t nbInputs) const = 0;
    virtual void writeFields(FieldWriter& writer) const = 0;
    // Shapes of the inputs (dimensions may be -1 at build time) against the plugin's semantics; on failure
    // returns false and says why in `error`.
    virtual bool checkShapes(nvinfer1::Dims64 const* inputs, int32_t nbInputs, std::string& error) const = 0;

    bool checkCounts(int32_t nbInputs, int32_t nbOutputs, char const* where) const;
    void reportError(std::string const& message) const;

    int32_t mNbInputs{0};

private:
    FieldWriter mFieldWriter;
};

bool toDtype(nvinfer1::DataType type, Dtype& out);
int64_t volume(nvinfer1::Dims64 const& dims, int32_t from, int32_t to);
// The first normalized dimension for `axis` (negative counts from the end), or -1 when out of range.
int32_t normalizeAxis(int32_t axis, int32_t nbDims);
std::string shapeString(nvinfer1::Dims64 const& dims);
} // namespace pgx

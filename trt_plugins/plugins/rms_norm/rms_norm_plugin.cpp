// RMSNorm: inputs (input, gamma); y = x * rsqrt(mean(x^2) + epsilon) * gamma.
#include "common/creator.h"
#include "common/row_norm_plugin.h"

#include <plugin_specs.h>

namespace pgx
{
namespace spec = specs::RMSNorm;

class RmsNormPlugin final : public RowNormPlugin
{
public:
    static constexpr char const* kName = spec::kName;
    static constexpr char const* kVersion = spec::kVersion;

    RmsNormPlugin()
    {
        mEpsilon = spec::kDefault_epsilon;
        mAxis = spec::kDefault_axis;
    }

    static void describeFields(FieldNames& names)
    {
        names.addFloat(spec::kField_epsilon);
        names.addInt(spec::kField_axis);
    }

    void readFields(FieldReader& reader)
    {
        readNormFields(reader, spec::kField_epsilon, spec::kField_axis);
    }

    char const* getPluginName() const noexcept override
    {
        return kName;
    }
    char const* getPluginVersion() const noexcept override
    {
        return kVersion;
    }
    int32_t getNbOutputs() const noexcept override
    {
        return 1;
    }
    nvinfer1::IPluginV3* clone() noexcept override
    {
        try
        {
            return new RmsNormPlugin(*this);
        }
        catch (...)
        {
            return nullptr;
        }
    }

protected:
    int32_t dataInputCount() const override
    {
        return 1;
    }
    bool acceptsInputCount(int32_t nbInputs) const override
    {
        return nbInputs == 2;
    }
    RowNormLayout layout(int32_t /*nbInputs*/) const override
    {
        RowNormLayout slots;
        slots.gamma = 1;
        slots.rms = true;
        return slots;
    }
    void writeFields(FieldWriter& writer) const override
    {
        writer.add(spec::kField_epsilon, mEpsilon);
        writer.add(spec::kField_axis, mAxis);
    }
};

nvinfer1::IPluginCreatorInterface* rmsNormCreator()
{
    static Creator<RmsNormPlugin> creator;
    return &creator;
}
} // namespace pgx

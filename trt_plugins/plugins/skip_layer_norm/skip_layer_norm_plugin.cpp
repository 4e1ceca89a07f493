// SkipLayerNorm: inputs (input, skip, gamma[, beta][, bias]) as the has_beta/has_bias fields say (ONNX has no
// way to tell which optional input in the middle of the list was left out); outputs (output[, sum]).
#include "common/creator.h"
#include "plugins/row_norm/row_norm_plugin.h"

#include <plugin_specs.h>

namespace pgx
{
using spec = specs::SkipLayerNorm;

class SkipLayerNormPlugin final : public SpecPlugin<spec, SkipLayerNormPlugin, RowNormPlugin>
{
public:
    SkipLayerNormPlugin()
    {
        mEpsilon = spec::kDefault_epsilon;
        mAxis = spec::kDefault_axis;
    }

    static void describeFields(FieldNames& names)
    {
        names.addFloat(spec::kField_epsilon);
        names.addInt(spec::kField_axis);
        names.addInt(spec::kField_has_beta);
        names.addInt(spec::kField_has_bias);
        names.addInt(spec::kField_output_sum);
    }

    void readFields(FieldReader& reader)
    {
        readNormFields(reader, spec::kField_epsilon, spec::kField_axis);
        readFlag(reader, spec::kField_has_beta, mHasBeta);
        readFlag(reader, spec::kField_has_bias, mHasBias);
        readFlag(reader, spec::kField_output_sum, mOutputSum);
    }

    int32_t getNbOutputs() const noexcept override
    {
        return 1 + mOutputSum;
    }

protected:
    int32_t dataInputCount() const override
    {
        return 2;
    }
    bool acceptsInputCount(int32_t nbInputs) const override
    {
        return nbInputs == 3 + mHasBeta + mHasBias;
    }
    RowNormLayout layout(int32_t /*nbInputs*/) const override
    {
        RowNormLayout slots;
        slots.skip = 1;
        slots.gamma = 2;
        slots.beta = mHasBeta ? 3 : -1;
        slots.bias = mHasBias ? 3 + mHasBeta : -1;
        slots.sumOutput = mOutputSum ? 1 : -1;
        return slots;
    }
    void writeFields(FieldWriter& writer) const override
    {
        writer.add(spec::kField_epsilon, mEpsilon);
        writer.add(spec::kField_axis, mAxis);
        writer.add(spec::kField_has_beta, mHasBeta);
        writer.add(spec::kField_has_bias, mHasBias);
        writer.add(spec::kField_output_sum, mOutputSum);
    }

private:
    static void readFlag(FieldReader& reader, char const* name, int32_t& value)
    {
        reader.read(name, value);
        if (value != 0 && value != 1)
        {
            reader.fail(std::string("field '") + name + "' must be 0 or 1, got " + std::to_string(value));
            value = 0;
        }
    }

    int32_t mHasBeta{spec::kDefault_has_beta};
    int32_t mHasBias{spec::kDefault_has_bias};
    int32_t mOutputSum{spec::kDefault_output_sum};
};

nvinfer1::IPluginCreatorInterface* skipLayerNormCreator()
{
    static Creator<SkipLayerNormPlugin> creator;
    return &creator;
}
} // namespace pgx

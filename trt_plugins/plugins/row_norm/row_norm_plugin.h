// Common part of LayerNorm, SkipLayerNorm and RMSNorm: fields epsilon and axis, rows/cols from the input
// shape (cols = product of the dims from axis on), parameter shape checks, and the enqueue into launchRowNorm.
#pragma once
#include "common/creator.h"
#include "common/plugin_base.h"

namespace pgx
{
// Which input/output slot holds which tensor (-1: absent) for a given number of inputs.
struct RowNormLayout
{
    int32_t skip{-1};
    int32_t gamma{-1};
    int32_t beta{-1};
    int32_t bias{-1};
    int32_t sumOutput{-1};
    bool rms{false};
};

class RowNormPlugin : public PluginBase
{
public:
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;

protected:
    virtual RowNormLayout layout(int32_t nbInputs) const = 0;
    bool checkShapes(nvinfer1::Dims64 const* inputs, int32_t nbInputs, std::string& error) const override;
    // Reads and validates epsilon and axis (shared by the three plugins, defaults from specs.json).
    void readNormFields(FieldReader& reader, char const* epsilonName, char const* axisName);

    float mEpsilon{0.f};
    int32_t mAxis{-1};
};

// LayerNorm (kRms false: inputs input, gamma[, beta]) and RMSNorm (kRms true: inputs input, gamma): one data
// input, one output, fields epsilon and axis.
template <typename Spec, bool kRms>
class SingleInputNormPlugin final : public SpecPlugin<Spec, SingleInputNormPlugin<Spec, kRms>, RowNormPlugin>
{
public:
    SingleInputNormPlugin()
    {
        this->mEpsilon = Spec::kDefault_epsilon;
        this->mAxis = Spec::kDefault_axis;
    }

    static void describeFields(FieldNames& names)
    {
        names.addFloat(Spec::kField_epsilon);
        names.addInt(Spec::kField_axis);
    }

    void readFields(FieldReader& reader)
    {
        this->readNormFields(reader, Spec::kField_epsilon, Spec::kField_axis);
    }

    int32_t getNbOutputs() const noexcept override
    {
        return 1;
    }

protected:
    int32_t dataInputCount() const override
    {
        return 1;
    }
    bool acceptsInputCount(int32_t nbInputs) const override
    {
        return nbInputs == 2 || (!kRms && nbInputs == 3);
    }
    RowNormLayout layout(int32_t nbInputs) const override
    {
        RowNormLayout slots;
        slots.gamma = 1;
        slots.beta = nbInputs == 3 ? 2 : -1;
        slots.rms = kRms;
        return slots;
    }
    void writeFields(FieldWriter& writer) const override
    {
        writer.add(Spec::kField_epsilon, this->mEpsilon);
        writer.add(Spec::kField_axis, this->mAxis);
    }
};
} // namespace pgx

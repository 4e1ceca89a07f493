// BiasGelu: inputs (input[, bias]); y = gelu(input + bias), bias broadcast over the trailing dims whose product
// equals its element count; approximate = "none" (erf) or "tanh", as ONNX Gelu.
#include "common/creator.h"
#include "common/plugin_base.h"
#include "plugins/bias_gelu/bias_gelu_kernel.h"

#include <plugin_specs.h>

using namespace nvinfer1;

namespace pgx
{
using spec = specs::BiasGelu;

namespace
{
// How many trailing elements of `x` the bias spans: the product of the last k dims that equals the bias's
// element count, or -1 when no such k exists (or dims are unknown).
int64_t biasPeriod(Dims64 const& x, int64_t biasElements)
{
    int64_t period = 1;
    for (int32_t i = x.nbDims; i >= 0; --i)
    {
        if (period == biasElements)
        {
            return period;
        }
        if (i == 0 || x.d[i - 1] < 0)
        {
            return -1;
        }
        period *= x.d[i - 1];
    }
    return -1;
}
} // namespace

class BiasGeluPlugin final : public SpecPlugin<spec, BiasGeluPlugin, PluginBase>
{
public:
    static void describeFields(FieldNames& names)
    {
        names.addString(spec::kField_approximate);
    }

    void readFields(FieldReader& reader)
    {
        reader.read(spec::kField_approximate, mApproximate);
        if (mApproximate != "none" && mApproximate != "tanh")
        {
            reader.fail(std::string("field '") + spec::kField_approximate + "' must be \"none\" or \"tanh\", got \""
                + mApproximate + "\"");
        }
    }

    int32_t getNbOutputs() const noexcept override
    {
        return 1;
    }

    int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc, void const* const* inputs,
        void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept override
    {
        Dims64 dims[2] = {inputDesc[0].dims, mNbInputs == 2 ? inputDesc[1].dims : Dims64{}};
        std::string error;
        if (!checkShapes(dims, mNbInputs, error))
        {
            reportError("enqueue: " + error);
            return -1;
        }
        Dtype io;
        Dtype param = Dtype::kFloat32;
        if (!toDtype(inputDesc[0].type, io) || (mNbInputs == 2 && !toDtype(inputDesc[1].type, param))
            || outputDesc[0].type != inputDesc[0].type)
        {
            reportError("enqueue: unsupported tensor types");
            return -1;
        }
        BiasGeluArgs args;
        args.x = inputs[0];
        args.y = outputs[0];
        args.n = volume(dims[0], 0, dims[0].nbDims);
        if (mNbInputs == 2)
        {
            args.bias = inputs[1];
            args.biasSize = volume(dims[1], 0, dims[1].nbDims);
        }
        args.tanhApproximation = mApproximate == "tanh";
        cudaError_t const status = launchBiasGelu(args, io, param, stream);
        if (status != cudaSuccess)
        {
            reportError(std::string("kernel launch failed: ") + cudaGetErrorString(status));
            return -1;
        }
        return 0;
    }

protected:
    int32_t dataInputCount() const override
    {
        return 1;
    }
    bool acceptsInputCount(int32_t nbInputs) const override
    {
        return nbInputs == 1 || nbInputs == 2;
    }
    void writeFields(FieldWriter& writer) const override
    {
        writer.add(spec::kField_approximate, mApproximate);
    }
    bool checkShapes(Dims64 const* inputs, int32_t nbInputs, std::string& error) const override
    {
        if (nbInputs < 2)
        {
            return true;
        }
        int64_t const biasElements = volume(inputs[1], 0, inputs[1].nbDims);
        if (biasElements < 0 || volume(inputs[0], 0, inputs[0].nbDims) < 0)
        {
            return true; // dynamic at build time; checked again once shapes are known
        }
        if (biasElements == 0 || biasPeriod(inputs[0], biasElements) < 0)
        {
            error = "bias with " + std::to_string(biasElements) + " elements does not match the trailing dims of input "
                + shapeString(inputs[0]);
            return false;
        }
        return true;
    }

private:
    std::string mApproximate{spec::kDefault_approximate};
};

IPluginCreatorInterface* biasGeluCreator()
{
    static Creator<BiasGeluPlugin> creator;
    return &creator;
}
} // namespace pgx

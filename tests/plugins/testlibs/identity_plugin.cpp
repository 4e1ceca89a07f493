// A third-party-style TensorRT plugin library for the loader tests: one IPluginV3 creator whose plugin
// copies its only input to its only output. Compiled by build_testlibs.py (next to this file) with g++, in
// variants:
//
//   PGX_TEST_PLUGIN_NAME          creator name (string literal), default "PgxTestIdentity"
//   PGX_TEST_STATIC_REGISTRATION  register through REGISTER_TENSORRT_PLUGIN at dlopen time (links TensorRT)
//                                 instead of exporting getCreators
//   PGX_TEST_NO_LOGGER_FINDER     export getCreators but not setLoggerFinder (TensorRT refuses such a library)
//   PGX_TEST_NO_ENTRY_POINTS      export neither entry point and register nothing
//
// The tests only load these libraries and build engines with them, which TensorRT-RTX does on the CPU;
// the plugin never executes, so enqueue reports failure instead of needing the CUDA runtime.
#include "NvInferRuntime.h"

#include <cstring>
#include <vector>

#ifndef PGX_TEST_PLUGIN_NAME
#define PGX_TEST_PLUGIN_NAME "PgxTestIdentity"
#endif
#define PGX_TEST_PLUGIN_VERSION "1"
#define PGX_TEST_PLUGIN_NAMESPACE "pgx_test"

using namespace nvinfer1;

namespace
{

class IdentityPlugin final : public IPluginV3, public IPluginV3OneCore, public IPluginV3OneBuild, public IPluginV3OneRuntime
{
public:
    IPluginCapability* getCapabilityInterface(PluginCapabilityType type) noexcept override
    {
        switch (type)
        {
        case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
        case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
        case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
        }
        return nullptr;
    }
    IPluginV3* clone() noexcept override { return new IdentityPlugin(); }

    AsciiChar const* getPluginName() const noexcept override { return PGX_TEST_PLUGIN_NAME; }
    AsciiChar const* getPluginVersion() const noexcept override { return PGX_TEST_PLUGIN_VERSION; }
    AsciiChar const* getPluginNamespace() const noexcept override { return PGX_TEST_PLUGIN_NAMESPACE; }

    int32_t configurePlugin(DynamicPluginTensorDesc const*, int32_t, DynamicPluginTensorDesc const*, int32_t) noexcept override
    {
        return 0;
    }
    int32_t getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept override
    {
        if (nbOutputs != 1 || nbInputs != 1)
            return -1;
        outputTypes[0] = inputTypes[0];
        return 0;
    }
    int32_t getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const*, int32_t, DimsExprs* outputs,
        int32_t nbOutputs, IExprBuilder&) noexcept override
    {
        if (nbOutputs != 1 || nbInputs != 1)
            return -1;
        outputs[0] = inputs[0];
        return 0;
    }
    bool supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t, int32_t) noexcept override
    {
        return inOut[pos].desc.type == DataType::kFLOAT && inOut[pos].desc.format == TensorFormat::kLINEAR;
    }
    int32_t getNbOutputs() const noexcept override { return 1; }

    int32_t onShapeChange(PluginTensorDesc const*, int32_t, PluginTensorDesc const*, int32_t) noexcept override { return 0; }
    int32_t enqueue(PluginTensorDesc const*, PluginTensorDesc const*, void const* const*, void* const*, void*, cudaStream_t) noexcept override
    {
        return -1;
    }
    IPluginV3* attachToContext(IPluginResourceContext*) noexcept override { return clone(); }
    PluginFieldCollection const* getFieldsToSerialize() noexcept override
    {
        mFields.nbFields = 0;
        mFields.fields = nullptr;
        return &mFields;
    }

private:
    PluginFieldCollection mFields{};
};

class IdentityCreator final : public IPluginCreatorV3One
{
public:
    IdentityCreator()
    {
        mFields.nbFields = 0;
        mFields.fields = nullptr;
    }
    IPluginV3* createPlugin(AsciiChar const*, PluginFieldCollection const*, TensorRTPhase) noexcept override
    {
        return new IdentityPlugin();
    }
    PluginFieldCollection const* getFieldNames() noexcept override { return &mFields; }
    AsciiChar const* getPluginName() const noexcept override { return PGX_TEST_PLUGIN_NAME; }
    AsciiChar const* getPluginVersion() const noexcept override { return PGX_TEST_PLUGIN_VERSION; }
    AsciiChar const* getPluginNamespace() const noexcept override { return PGX_TEST_PLUGIN_NAMESPACE; }

private:
    PluginFieldCollection mFields{};
};

} // namespace

#if defined(PGX_TEST_STATIC_REGISTRATION)
REGISTER_TENSORRT_PLUGIN(IdentityCreator);
#elif !defined(PGX_TEST_NO_ENTRY_POINTS)
extern "C" __attribute__((visibility("default"))) IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    static IdentityCreator creator;
    static IPluginCreatorInterface* const creators[] = {&creator};
    nbCreators = 1;
    return creators;
}
#ifndef PGX_TEST_NO_LOGGER_FINDER
extern "C" __attribute__((visibility("default"))) void setLoggerFinder(ILoggerFinder*) {}
#endif
#else
// A shared library that is not a plugin library at all.
extern "C" __attribute__((visibility("default"))) int pgxTestAnswer() { return 42; }
#endif

// C-ABI shim for driving the plugin library the way TensorRT does, from Python (ctypes) with torch tensors:
// load the library (getCreators/setLoggerFinder), create a plugin through its IPluginCreatorV3One, run the build
// capability (supportsFormatCombination, getOutputDataTypes, configurePlugin, getWorkspaceSize), round-trip the
// fields through getFieldsToSerialize into a runtime-phase plugin, then onShapeChange and enqueue.
// getOutputShapes needs TensorRT's IExprBuilder and is exercised by the CPU tests through a real engine build.
// It also exposes the row-norm launch plan (plugins/row_norm/plan.cpp, compiled in), a pure host function, so
// that plans can be checked on a machine without a GPU.
//
// Build (on a machine with the CUDA toolkit; no TensorRT library needed), from trt_plugins/:
//   g++ -std=c++17 -O2 -shared -fPIC -I . -I third_party/tensorrt/include -I $CUDA/include tools/harness.cpp \
//       plugins/row_norm/plan.cpp -o libpgx_harness.so -ldl
#include "plugins/row_norm/plan.h"

#include <NvInferRuntime.h>

#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

using namespace nvinfer1;

namespace
{
std::mutex gMutex;
std::string gLastError;
std::vector<IPluginCreatorV3One*> gCreators;

class RecordingLogger : public ILogger
{
public:
    void log(Severity severity, AsciiChar const* msg) noexcept override
    {
        if (severity <= Severity::kWARNING)
        {
            std::lock_guard<std::mutex> lock(gMutex);
            gLastError = msg;
            std::fprintf(stderr, "%s\n", msg);
        }
    }
} gLogger;

class Finder : public ILoggerFinder
{
public:
    ILogger* findLogger() noexcept override
    {
        return &gLogger;
    }
} gFinder;

struct Session
{
    std::unique_ptr<IPluginV3> runtime;
    std::vector<PluginTensorDesc> inputs;
    std::vector<PluginTensorDesc> outputs;
};

IPluginCreatorV3One* findCreator(char const* name)
{
    for (auto* creator : gCreators)
    {
        if (std::strcmp(creator->getPluginName(), name) == 0)
        {
            return creator;
        }
    }
    return nullptr;
}

PluginTensorDesc makeDesc(int dtype, int rank, int64_t const* dims)
{
    PluginTensorDesc desc{};
    desc.dims.nbDims = rank;
    for (int i = 0; i < rank; ++i)
    {
        desc.dims.d[i] = dims[i];
    }
    desc.type = static_cast<DataType>(dtype);
    desc.format = TensorFormat::kLINEAR;
    desc.scale = 1.f;
    return desc;
}
} // namespace

extern "C"
{
// Returns the number of creators found, or -1 (message in pgx_last_error).
int pgx_load(char const* path)
{
    void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle)
    {
        gLastError = dlerror();
        return -1;
    }
    using GetCreators = IPluginCreatorInterface* const* (*) (int32_t&);
    using SetLoggerFinder = void (*)(ILoggerFinder*);
    auto getCreators = reinterpret_cast<GetCreators>(dlsym(handle, "getCreators"));
    auto setLoggerFinder = reinterpret_cast<SetLoggerFinder>(dlsym(handle, "setLoggerFinder"));
    if (!getCreators || !setLoggerFinder)
    {
        gLastError = "getCreators/setLoggerFinder not exported";
        return -1;
    }
    setLoggerFinder(&gFinder);
    int32_t n = 0;
    IPluginCreatorInterface* const* creators = getCreators(n);
    gCreators.clear();
    for (int32_t i = 0; i < n; ++i)
    {
        gCreators.push_back(static_cast<IPluginCreatorV3One*>(creators[i]));
    }
    return n;
}

char const* pgx_last_error()
{
    return gLastError.c_str();
}

// Creates a build-phase plugin from fields (types are PluginFieldType values); null on rejection.
void* pgx_create(char const* name, int nbFields, char const* const* names, int const* types, void const* const* data,
    int const* lengths)
{
    IPluginCreatorV3One* creator = findCreator(name);
    if (!creator)
    {
        gLastError = std::string("no creator named ") + name;
        return nullptr;
    }
    std::vector<PluginField> fields;
    for (int i = 0; i < nbFields; ++i)
    {
        fields.emplace_back(names[i], data[i], static_cast<PluginFieldType>(types[i]), lengths[i]);
    }
    PluginFieldCollection fc{nbFields, fields.data()};
    return creator->createPlugin("harness", &fc, TensorRTPhase::kBUILD);
}

void pgx_destroy(void* plugin)
{
    delete static_cast<IPluginV3*>(plugin);
}

// Build phase on `plugin`, then a runtime-phase plugin re-created from its serialized fields. Tensors are
// given as nbInputs + nbOutputs (dtype, rank, dims[8]) entries. Returns a session or null; `status` says which
// step failed: 1 format combination, 2 output types, 3 configurePlugin, 4 workspace, 5 serialization,
// 6 runtime creation, 7 onShapeChange.
void* pgx_prepare(void* plugin, int nbInputs, int nbOutputs, int const* dtypes, int const* ranks,
    int64_t const* dims, int* status)
{
    auto* p = static_cast<IPluginV3*>(plugin);
    auto* core = static_cast<IPluginV3OneCore*>(p->getCapabilityInterface(PluginCapabilityType::kCORE));
    auto* build = static_cast<IPluginV3OneBuild*>(p->getCapabilityInterface(PluginCapabilityType::kBUILD));
    int const total = nbInputs + nbOutputs;
    std::vector<DynamicPluginTensorDesc> dyn(total);
    for (int i = 0; i < total; ++i)
    {
        dyn[i].desc = makeDesc(dtypes[i], ranks[i], dims + 8 * i);
        dyn[i].min = dyn[i].max = dyn[i].opt = dyn[i].desc.dims;
    }
    for (int pos = 0; pos < total; ++pos)
    {
        if (!build->supportsFormatCombination(pos, dyn.data(), nbInputs, nbOutputs))
        {
            *status = 1;
            return nullptr;
        }
    }
    std::vector<DataType> inTypes(nbInputs);
    std::vector<DataType> outTypes(nbOutputs);
    for (int i = 0; i < nbInputs; ++i)
    {
        inTypes[i] = dyn[i].desc.type;
    }
    if (build->getOutputDataTypes(outTypes.data(), nbOutputs, inTypes.data(), nbInputs) != 0)
    {
        *status = 2;
        return nullptr;
    }
    for (int i = 0; i < nbOutputs; ++i)
    {
        if (outTypes[i] != dyn[nbInputs + i].desc.type)
        {
            *status = 2;
            return nullptr;
        }
    }
    if (build->configurePlugin(dyn.data(), nbInputs, dyn.data() + nbInputs, nbOutputs) != 0)
    {
        *status = 3;
        return nullptr;
    }
    if (build->getWorkspaceSize(dyn.data(), nbInputs, dyn.data() + nbInputs, nbOutputs) != 0)
    {
        *status = 4;
        return nullptr;
    }
    auto* buildRuntime = static_cast<IPluginV3OneRuntime*>(p->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    PluginFieldCollection const* fc = buildRuntime->getFieldsToSerialize();
    if (!fc)
    {
        *status = 5;
        return nullptr;
    }
    IPluginCreatorV3One* creator = findCreator(core->getPluginName());
    auto session = std::make_unique<Session>();
    session->runtime.reset(creator->createPlugin("harness", fc, TensorRTPhase::kRUNTIME));
    if (!session->runtime)
    {
        *status = 6;
        return nullptr;
    }
    for (int i = 0; i < total; ++i)
    {
        (i < nbInputs ? session->inputs : session->outputs).push_back(dyn[i].desc);
    }
    auto* runtime
        = static_cast<IPluginV3OneRuntime*>(session->runtime->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    if (runtime->onShapeChange(session->inputs.data(), nbInputs, session->outputs.data(), nbOutputs) != 0)
    {
        *status = 7;
        return nullptr;
    }
    *status = 0;
    return session.release();
}

int pgx_enqueue(void* sessionHandle, void const* const* inputs, void* const* outputs, void* stream)
{
    auto* session = static_cast<Session*>(sessionHandle);
    auto* runtime
        = static_cast<IPluginV3OneRuntime*>(session->runtime->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    return runtime->enqueue(session->inputs.data(), session->outputs.data(), inputs, outputs, nullptr,
        static_cast<cudaStream_t>(stream));
}

// Writes the fields the plugin serializes as "name=value" lines (value as text) into `out`; returns the length
// needed, or -1 when the plugin serializes nothing.
int pgx_serialized_fields(void* plugin, char* out, int capacity)
{
    auto* runtime = static_cast<IPluginV3OneRuntime*>(
        static_cast<IPluginV3*>(plugin)->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    PluginFieldCollection const* fc = runtime->getFieldsToSerialize();
    if (!fc)
    {
        return -1;
    }
    std::string text;
    for (int i = 0; i < fc->nbFields; ++i)
    {
        PluginField const& f = fc->fields[i];
        text += std::string(f.name) + "=";
        switch (f.type)
        {
        case PluginFieldType::kFLOAT32:
        {
            char number[32];
            std::snprintf(number, sizeof(number), "%.9g", *static_cast<float const*>(f.data));
            text += number;
            break;
        }
        case PluginFieldType::kINT32: text += std::to_string(*static_cast<int32_t const*>(f.data)); break;
        case PluginFieldType::kCHAR: text += std::string(static_cast<char const*>(f.data), f.length); break;
        default: text += "?"; break;
        }
        text += "\n";
    }
    if (static_cast<int>(text.size()) < capacity)
    {
        std::memcpy(out, text.c_str(), text.size() + 1);
    }
    return static_cast<int>(text.size());
}

void pgx_release(void* sessionHandle)
{
    delete static_cast<Session*>(sessionHandle);
}

// The row-norm launch plan for a problem on a device with `limits` (see plugins/row_norm/plan.h).
void pgx_plan_row_norm(pgx::RowNormProblem const* problem, pgx::DeviceLimits const* limits, pgx::RowNormPlan* plan)
{
    *plan = pgx::planRowNorm(*problem, *limits);
}

// The plan with a light variant asked for (planRowNormAs), as tuning builds launch it.
void pgx_plan_row_norm_as(
    pgx::RowNormProblem const* problem, pgx::DeviceLimits const* limits, int variant, pgx::RowNormPlan* plan)
{
    *plan = pgx::planRowNormAs(*problem, *limits, static_cast<pgx::RowNormVariant>(variant));
}

char const* pgx_row_norm_variant_name(int variant)
{
    return pgx::rowNormVariantName(static_cast<pgx::RowNormVariant>(variant));
}
}

// One creator template for every plugin, and the identity part every plugin class shares. A plugin class provides:
//   static constexpr char const* kName, kVersion;  (from SpecPlugin below)
//   static void describeFields(FieldNames&);   the fields getFieldNames advertises
//   void readFields(FieldReader&);             parse and validate (reader.fail(...) on bad values)
// Creation never throws and never crashes on bad input: it logs and returns null.
#pragma once
#include "common/fields.h"
#include "common/logging.h"

#include <NvInferRuntime.h>
#include <plugin_specs.h>

#include <memory>

namespace pgx
{
// Name, version and clone for a plugin class `Derived` (derived from `Base`, a PluginBase) whose names come from
// its generated spec struct (plugin_specs.h).
template <typename Spec, typename Derived, typename Base>
class SpecPlugin : public Base
{
public:
    static constexpr char const* kName = Spec::kName;
    static constexpr char const* kVersion = Spec::kVersion;

    char const* getPluginName() const noexcept override
    {
        return kName;
    }
    char const* getPluginVersion() const noexcept override
    {
        return kVersion;
    }
    nvinfer1::IPluginV3* clone() noexcept override
    {
        try
        {
            return new Derived(static_cast<Derived const&>(*this));
        }
        catch (...)
        {
            return nullptr;
        }
    }
};

template <typename Plugin>
class Creator : public nvinfer1::IPluginCreatorV3One
{
public:
    Creator()
    {
        Plugin::describeFields(mFieldNames);
    }

    nvinfer1::IPluginV3* createPlugin(
        char const* /*name*/, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override
    {
        try
        {
            FieldReader reader(Plugin::kName, fc, phase);
            auto plugin = std::make_unique<Plugin>();
            plugin->readFields(reader);
            if (!reader.finish())
            {
                return nullptr;
            }
            return plugin.release();
        }
        catch (...)
        {
            logError(std::string(Plugin::kName) + ": plugin creation failed (out of memory?)");
            return nullptr;
        }
    }

    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override
    {
        return mFieldNames.collection();
    }
    char const* getPluginName() const noexcept override
    {
        return Plugin::kName;
    }
    char const* getPluginVersion() const noexcept override
    {
        return Plugin::kVersion;
    }
    char const* getPluginNamespace() const noexcept override
    {
        return specs::kNamespace;
    }

private:
    FieldNames mFieldNames;
};
} // namespace pgx

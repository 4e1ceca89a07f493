// Plugin fields in and out: reading the PluginFieldCollection a creator receives (from the ONNX parser, the
// network API or a serialized engine) and building the one the plugin hands back for serialization.
#pragma once
#include <NvInferRuntime.h>

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace pgx
{
// Reads named fields off a collection. Fields absent at build time keep the default the caller preset;
// at runtime (deserialization) every field must be present, since the plugin wrote all of them. Any
// malformed, missing or unknown field is logged, and ok() turns false so that the creator returns null.
class FieldReader
{
public:
    FieldReader(char const* pluginName, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase);

    void read(char const* name, float& value);
    void read(char const* name, int32_t& value);
    void read(char const* name, std::string& value);

    // Logs every field nobody asked for (typos must not silently fall back to defaults); true when all was well.
    bool finish();

    void fail(std::string const& message);

private:
    nvinfer1::PluginField const* find(char const* name);

    std::string mPlugin;
    nvinfer1::PluginFieldCollection const* mFields;
    nvinfer1::TensorRTPhase mPhase;
    std::vector<bool> mConsumed;
    bool mOk{true};
};

// Owns the field descriptors (and copies of the values) a plugin returns from getFieldsToSerialize; the
// pointers stay valid until the next clear(), which is what TensorRT requires.
class FieldWriter
{
public:
    void clear();
    void add(char const* name, float value);
    void add(char const* name, int32_t value);
    void add(char const* name, std::string const& value);
    nvinfer1::PluginFieldCollection const* collection();

private:
    std::deque<float> mFloats;
    std::deque<int32_t> mInts;
    std::deque<std::string> mStrings;
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
};

// The (name, type) list a creator advertises through getFieldNames.
class FieldNames
{
public:
    void addFloat(char const* name);
    void addInt(char const* name);
    void addString(char const* name);
    nvinfer1::PluginFieldCollection const* collection();

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
};
} // namespace pgx

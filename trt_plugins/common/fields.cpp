#include "common/fields.h"

#include "common/logging.h"

#include <cmath>
#include <cstring>
#include <limits>

using nvinfer1::PluginField;
using nvinfer1::PluginFieldType;

namespace pgx
{
namespace
{
char const* typeName(PluginFieldType type)
{
    switch (type)
    {
    case PluginFieldType::kFLOAT16: return "float16";
    case PluginFieldType::kFLOAT32: return "float32";
    case PluginFieldType::kFLOAT64: return "float64";
    case PluginFieldType::kINT8: return "int8";
    case PluginFieldType::kINT16: return "int16";
    case PluginFieldType::kINT32: return "int32";
    case PluginFieldType::kINT64: return "int64";
    case PluginFieldType::kCHAR: return "char";
    default: return "unsupported";
    }
}
} // namespace

FieldReader::FieldReader(char const* pluginName, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase)
    : mPlugin(pluginName)
    , mFields(fc)
    , mPhase(phase)
{
    if (fc != nullptr && fc->nbFields > 0 && fc->fields == nullptr)
    {
        fail("the field collection has " + std::to_string(fc->nbFields) + " fields but no field array");
        mFields = nullptr;
    }
    if (fc != nullptr && fc->nbFields < 0)
    {
        fail("the field collection has a negative field count");
        mFields = nullptr;
    }
    mConsumed.assign(mFields ? static_cast<size_t>(mFields->nbFields) : 0, false);
}

void FieldReader::fail(std::string const& message)
{
    logError(mPlugin + ": " + message);
    mOk = false;
}

PluginField const* FieldReader::find(char const* name)
{
    int32_t const count = mFields ? mFields->nbFields : 0;
    for (int32_t i = 0; i < count; ++i)
    {
        PluginField const& field = mFields->fields[i];
        if (field.name != nullptr && std::strcmp(field.name, name) == 0)
        {
            mConsumed[i] = true;
            if (field.data == nullptr || field.length < 1)
            {
                fail(std::string("field '") + name + "' has no data");
                return nullptr;
            }
            return &field;
        }
    }
    if (mPhase == nvinfer1::TensorRTPhase::kRUNTIME)
    {
        fail(std::string("serialized field '") + name + "' is missing (engine built by another version?)");
    }
    return nullptr;
}

void FieldReader::read(char const* name, float& value)
{
    PluginField const* field = find(name);
    if (field == nullptr)
    {
        return;
    }
    double v;
    switch (field->type)
    {
    case PluginFieldType::kFLOAT32: v = *static_cast<float const*>(field->data); break;
    case PluginFieldType::kFLOAT64: v = *static_cast<double const*>(field->data); break;
    default:
        return fail(std::string("field '") + name + "' must be float32 or float64, got " + typeName(field->type));
    }
    if (field->length != 1)
    {
        return fail(std::string("field '") + name + "' must hold one value, got " + std::to_string(field->length));
    }
    if (!std::isfinite(v) || std::fabs(v) > std::numeric_limits<float>::max())
    {
        return fail(std::string("field '") + name + "' must be a finite float32 value");
    }
    value = static_cast<float>(v);
}

void FieldReader::read(char const* name, int32_t& value)
{
    PluginField const* field = find(name);
    if (field == nullptr)
    {
        return;
    }
    int64_t v;
    switch (field->type)
    {
    case PluginFieldType::kINT8: v = *static_cast<int8_t const*>(field->data); break;
    case PluginFieldType::kINT16: v = *static_cast<int16_t const*>(field->data); break;
    case PluginFieldType::kINT32: v = *static_cast<int32_t const*>(field->data); break;
    case PluginFieldType::kINT64: v = *static_cast<int64_t const*>(field->data); break;
    default:
        return fail(std::string("field '") + name + "' must be an integer (int8..int64), got " + typeName(field->type));
    }
    if (field->length != 1)
    {
        return fail(std::string("field '") + name + "' must hold one value, got " + std::to_string(field->length));
    }
    if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
    {
        return fail(std::string("field '") + name + "' is out of int32 range");
    }
    value = static_cast<int32_t>(v);
}

void FieldReader::read(char const* name, std::string& value)
{
    PluginField const* field = find(name);
    if (field == nullptr)
    {
        return;
    }
    if (field->type != PluginFieldType::kCHAR)
    {
        return fail(std::string("field '") + name + "' must be a string (char), got " + typeName(field->type));
    }
    // Producers disagree on whether the length counts a terminating NUL; accept both.
    std::string text(static_cast<char const*>(field->data), static_cast<size_t>(field->length));
    text.erase(text.find_last_not_of('\0') + 1);
    value = text;
}

bool FieldReader::finish()
{
    for (size_t i = 0; i < mConsumed.size(); ++i)
    {
        if (!mConsumed[i])
        {
            char const* name = mFields->fields[i].name;
            fail(std::string("unknown field '") + (name ? name : "<null>") + "'");
        }
    }
    return mOk;
}

void FieldWriter::clear()
{
    mFloats.clear();
    mInts.clear();
    mStrings.clear();
    mFields.clear();
}

void FieldWriter::add(char const* name, float value)
{
    mFloats.push_back(value);
    mFields.emplace_back(name, &mFloats.back(), PluginFieldType::kFLOAT32, 1);
}

void FieldWriter::add(char const* name, int32_t value)
{
    mInts.push_back(value);
    mFields.emplace_back(name, &mInts.back(), PluginFieldType::kINT32, 1);
}

void FieldWriter::add(char const* name, std::string const& value)
{
    mStrings.push_back(value);
    mFields.emplace_back(name, mStrings.back().c_str(), PluginFieldType::kCHAR, static_cast<int32_t>(value.size()));
}

nvinfer1::PluginFieldCollection const* FieldWriter::collection()
{
    mCollection.nbFields = static_cast<int32_t>(mFields.size());
    mCollection.fields = mFields.data();
    return &mCollection;
}

void FieldNames::addFloat(char const* name)
{
    mFields.emplace_back(name, nullptr, PluginFieldType::kFLOAT32, 1);
}

void FieldNames::addInt(char const* name)
{
    mFields.emplace_back(name, nullptr, PluginFieldType::kINT32, 1);
}

void FieldNames::addString(char const* name)
{
    mFields.emplace_back(name, nullptr, PluginFieldType::kCHAR, 1);
}

nvinfer1::PluginFieldCollection const* FieldNames::collection()
{
    mCollection.nbFields = static_cast<int32_t>(mFields.size());
    mCollection.fields = mFields.data();
    return &mCollection;
}
} // namespace pgx

// Messages from the plugins go to the logger of the TensorRT that loaded the library (found through the
// ILoggerFinder it hands to setLoggerFinder), so they appear where the user's other TensorRT messages do.
#pragma once
#include <NvInferRuntime.h>

#include <string>

namespace pgx
{
void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;
void log(nvinfer1::ILogger::Severity severity, std::string const& message) noexcept;
inline void logError(std::string const& message) noexcept
{
    log(nvinfer1::ILogger::Severity::kERROR, message);
}
inline void logWarning(std::string const& message) noexcept
{
    log(nvinfer1::ILogger::Severity::kWARNING, message);
}
} // namespace pgx

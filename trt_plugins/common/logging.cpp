#include "common/logging.h"

#include <atomic>
#include <cstdio>

namespace pgx
{
namespace
{
std::atomic<nvinfer1::ILoggerFinder*> gLoggerFinder{nullptr};
}

void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept
{
    gLoggerFinder.store(finder);
}

void log(nvinfer1::ILogger::Severity severity, std::string const& message) noexcept
{
    std::string const text = "[polygraphy_ext plugins] " + message;
    nvinfer1::ILoggerFinder* finder = gLoggerFinder.load();
    nvinfer1::ILogger* logger = nullptr;
    try
    {
        logger = finder ? finder->findLogger() : nullptr;
    }
    catch (...)
    {
        logger = nullptr;
    }
    if (logger)
    {
        logger->log(severity, text.c_str());
        return;
    }
    // Loaded by something other than TensorRT (a test harness): errors must still be visible.
    if (severity <= nvinfer1::ILogger::Severity::kWARNING)
    {
        std::fprintf(stderr, "%s\n", text.c_str());
    }
}
} // namespace pgx

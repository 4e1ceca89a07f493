// The two symbols TensorRT looks up when it loads a plugin library (IPluginRegistry::loadLibrary,
// trtexec --dynamicPlugins, polygraphy --plugins); everything else in the library is hidden.
#include "common/logging.h"

#include <NvInferRuntime.h>

#define PGX_EXPORT extern "C" __attribute__((visibility("default")))

namespace pgx
{
nvinfer1::IPluginCreatorInterface* layerNormCreator();
nvinfer1::IPluginCreatorInterface* skipLayerNormCreator();
nvinfer1::IPluginCreatorInterface* rmsNormCreator();
nvinfer1::IPluginCreatorInterface* biasGeluCreator();
} // namespace pgx

PGX_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    pgx::setLoggerFinder(finder);
}

PGX_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    static nvinfer1::IPluginCreatorInterface* const creators[] = {
        pgx::layerNormCreator(),
        pgx::skipLayerNormCreator(),
        pgx::rmsNormCreator(),
        pgx::biasGeluCreator(),
    };
    nbCreators = static_cast<int32_t>(sizeof(creators) / sizeof(creators[0]));
    return creators;
}

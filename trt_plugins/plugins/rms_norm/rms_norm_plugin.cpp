// RMSNorm: inputs (input, gamma); y = x * rsqrt(mean(x^2) + epsilon) * gamma.
#include "plugins/row_norm/row_norm_plugin.h"

#include <plugin_specs.h>

namespace pgx
{
nvinfer1::IPluginCreatorInterface* rmsNormCreator()
{
    static Creator<SingleInputNormPlugin<specs::RMSNorm, true>> creator;
    return &creator;
}
} // namespace pgx

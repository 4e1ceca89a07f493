// LayerNorm: inputs (input, gamma[, beta]); beta is present when the node has three inputs.
#include "plugins/row_norm/row_norm_plugin.h"

#include <plugin_specs.h>

namespace pgx
{
nvinfer1::IPluginCreatorInterface* layerNormCreator()
{
    static Creator<SingleInputNormPlugin<specs::LayerNorm, false>> creator;
    return &creator;
}
} // namespace pgx

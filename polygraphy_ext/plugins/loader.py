"""The Polygraphy loaders of plugin-aware loading (used by ``--plugins`` and in ``--gen-script`` output).

``LoadPluginLibraries`` is a drop-in for Polygraphy's ``LoadPlugins`` (a passthrough lazy loader);
``ReportMissingEnginePlugins`` (``engine_failure.py``) wraps engine deserialization; ``EmbedPluginLibraries``
puts the loaded libraries into built engines. The work is split by concern, each reason given in
docs/plugins-loading.md:

- ``discovery.py``: ``--plugins`` arguments to library files; how each must be loaded, from its ELF symbols
  (one exporting ``getCreators`` through ``IPluginRegistry.load_library``, one with static registration
  through dlopen). Libraries are only ever opened by absolute path: nothing is searched for.
- ``registry.py``: TensorRT imported first (a library linked against it finds it loaded), each library
  registered once per process, the creators it added logged.
- ``preflight.py``: an ONNX model's plugin nodes checked against the registry before the parser sees them;
  the shipped library loaded automatically when the model uses our plugin namespace.
- ``engine_failure.py``: a deserialization that fails for want of creators becomes one line naming them.
"""

import os

from polygraphy import mod, util
from polygraphy.backend.base import BaseLoader
from polygraphy.logger import G_LOGGER

# Re-exported: generated scripts and users import the three loaders from this module.
from polygraphy_ext.plugins.engine_failure import ReportMissingEnginePlugins  # noqa: F401
from polygraphy_ext.plugins.errors import fail
from polygraphy_ext.plugins.preflight import check_model_plugins
from polygraphy_ext.plugins.registry import import_trt, load_libraries, loaded_libraries

onnx = mod.lazy_import("onnx")


@mod.export(funcify=True)
class LoadPluginLibraries(BaseLoader):
    """
    A passthrough loader that loads TensorRT plugin libraries (and optionally checks an ONNX model's plugin
    nodes) before returning or calling ``obj``. A drop-in for Polygraphy's ``LoadPlugins``.

    For immediate evaluation, use ``load_plugin_libraries`` instead:
    ::

        load_plugin_libraries(plugins=["polygraphy_ext", "/opt/plugins/"])
    """

    def __init__(self, plugins=None, obj=None, check_onnx_model=None, autoload_shipped=None):
        """
        Args:
            plugins (List[str]):
                    Library paths, directories (every ``*.so``/``*.so.*`` inside is loaded) and/or
                    ``"polygraphy_ext"`` (the shipped library). Defaults to none.
            obj:
                    An object or callable to return or call respectively. Extra arguments are forwarded.
            check_onnx_model (bool):
                    Treat what ``obj`` yields as an ONNX model (path, bytes or ModelProto) and check its plugin
                    nodes against the registry before returning it. Defaults to False.
            autoload_shipped (bool):
                    When checking a model that uses polygraphy-ext's plugins, load the shipped library.
                    Defaults to True.
        """
        self.plugins = util.default(plugins, [])
        self.obj = obj
        self.check_onnx_model = util.default(check_onnx_model, False)
        self.autoload_shipped = util.default(autoload_shipped, True)

    @util.check_called_by("__call__")
    def call_impl(self, *args, **kwargs):
        """
        Returns:
            object: ``obj``, or its return value if it is callable.
        """
        import_trt()
        load_libraries(self.plugins)
        ret, _ = util.invoke_if_callable(self.obj, *args, **kwargs)
        # Tools that parse the network in one script and build in another (debug build/precision) hand this
        # loader a parsed network first; there is no ONNX model left to check then.
        if self.check_onnx_model and isinstance(ret, (str, os.PathLike, bytes, bytearray, onnx.ModelProto)):
            check_model_plugins(ret, autoload_shipped=self.autoload_shipped)
        return ret


@mod.export(funcify=True)
class EmbedPluginLibraries(BaseLoader):
    """
    Sets ``IBuilderConfig.plugins_to_serialize`` so that the engine carries the plugin libraries it needs
    (for version-compatible / lean-runtime deployment).
    """

    def __init__(self, config, plugins=None):
        """
        Args:
            config (Callable(builder, network) -> trt.IBuilderConfig):
                    The config loader to wrap, e.g. ``CreateConfig(...)``.
            plugins (List[str]):
                    What to embed, in ``--plugins`` syntax. Defaults to every library polygraphy-ext has loaded
                    in this process (including an automatically loaded shipped library).
        """
        self._config = config
        self.plugins = plugins

    @util.check_called_by("__call__")
    def call_impl(self, builder, network):
        """
        Returns:
            trt.IBuilderConfig: The config, with ``plugins_to_serialize`` set.
        """
        config, _ = util.invoke_if_callable(self._config, builder, network)
        if self.plugins is not None:
            paths = [str(lib.path) for lib in load_libraries(self.plugins)]
        else:
            paths = [str(lib.path) for lib in loaded_libraries()]
        if not paths:
            fail("--embed-plugins: no plugin libraries were loaded, so there is nothing to embed in the engine")
        if not hasattr(config, "plugins_to_serialize"):
            fail("--embed-plugins: this TensorRT has no IBuilderConfig.plugins_to_serialize (needs TensorRT 8.6+)")
        config.plugins_to_serialize = paths
        G_LOGGER.info("Embedding plugin libraries in the engine: " + ", ".join(paths))
        return config

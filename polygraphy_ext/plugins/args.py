"""The behaviour polygraphy-ext gives Polygraphy's ``TrtLoadPluginsArgs`` (``--plugins``) in every tool that uses it.

``integration/patches/trt_args.py`` installs these functions in place of the class's own (run/convert/inspect/
debug instantiate it by name, so it cannot be subclassed); the ``--plugins`` spelling and the ``plugins``
attribute stay as they were, the new flags have new names.

Where Polygraphy's version wraps loaders with ``LoadPlugins`` (``ctypes.CDLL``), ours wraps them with
``polygraphy_ext.plugins.loader.LoadPluginLibraries``, so ``--gen-script`` output uses it too. The first
loader it wraps in a script is the ONNX model handed to the parser (Polygraphy builds the network before
the engine); that one is also checked for plugin nodes. The engine that ``TrtLoadEngineArgs`` deserializes
is wrapped with ``ReportMissingEnginePlugins``, and the builder config with ``EmbedPluginLibraries`` under
``--embed-plugins``.
"""

import weakref

from polygraphy.tools.args import util as args_util
from polygraphy.tools.script import make_invocable

PATCHED = "_polygraphy_ext_plugins_patched"
_LOADER_MODULE = "polygraphy_ext.plugins.loader"

ARGS_DOC = (
    "TensorRT Plugin Loading: loading TensorRT plugin libraries through the plugin registry and checking "
    "models' plugin nodes first (polygraphy-ext, see docs/plugins-loading.md)"
)

PLUGINS_HELP = (
    "Plugin libraries to load: paths of libraries, directories (every *.so / *.so.* directly inside is loaded) "
    "and/or 'polygraphy_ext' (polygraphy-ext's shipped library), in any mix. TensorRT is imported first; a "
    "library exporting getCreators is loaded through TensorRT's plugin registry, one with static registration "
    "through dlopen; the creators each library adds are logged. Only the given paths are opened: nothing is "
    "searched for in the current directory or on the library path. Before an ONNX model is parsed, its plugin "
    "nodes are checked against the registry and every missing plugin is reported at once."
)
NO_AUTOLOAD_HELP = (
    "Do not load polygraphy-ext's shipped plugin library automatically when an ONNX model uses its plugins "
    "(nodes in the 'polygraphy_ext' plugin namespace) or an engine fails to deserialize for want of them. "
    "Without this flag such models and engines need no --plugins."
)
EMBED_HELP = (
    "Embed the loaded plugin libraries (from --plugins and automatic loading) in the built engine through "
    "TensorRT's IBuilderConfig.plugins_to_serialize, for version-compatible or lean-runtime deployment."
)


def add_parser_args_impl(self):
    self.group.add_argument("--plugins", help=PLUGINS_HELP, nargs="+", default=None)
    self.group.add_argument(
        "--no-autoload-plugins", help=NO_AUTOLOAD_HELP, action="store_true", default=None, dest="no_autoload_plugins"
    )
    self.group.add_argument("--embed-plugins", help=EMBED_HELP, action="store_true", default=None)


def parse_impl(self, args):
    """
    Parses command-line arguments and populates the following attributes:

    Attributes:
        plugins (List[str]): Plugin library paths, directories or the shipped library's name.
        autoload_plugins (bool): Whether to load the shipped library for models that use its plugins.
        embed_plugins (bool): Whether to embed the loaded libraries in built engines.
    """
    self.plugins = args_util.get(args, "plugins")
    self.autoload_plugins = not args_util.get(args, "no_autoload_plugins", default=False)
    self.embed_plugins = bool(args_util.get(args, "embed_plugins", default=False))


def _wraps_onnx_model(self, script) -> bool:
    from polygraphy.tools.args.model import ModelArgs

    model_args = self.arg_groups[ModelArgs] if ModelArgs in self.arg_groups else None
    if model_args is None or model_args.model_type != "onnx":
        return False
    seen = self.__dict__.setdefault("_polygraphy_ext_scripts", weakref.WeakSet())
    first = script not in seen
    seen.add(script)
    return first


def add_to_script_impl(self, script, loader_name):
    """
    Args:
        loader_name (str): The loader (or model path) that ``LoadPluginLibraries`` should pass through.
    """
    check_model = _wraps_onnx_model(self, script)
    if not self.plugins and not check_model:
        return loader_name
    script.add_import(imports=["LoadPluginLibraries"], frm=_LOADER_MODULE)
    loader_str = make_invocable(
        "LoadPluginLibraries",
        plugins=self.plugins,
        obj=loader_name,
        check_onnx_model=True if check_model else None,
        autoload_shipped=None if self.autoload_plugins else False,
    )
    return script.add_loader(loader_str, "load_plugins")


def wrap_config_add_to_script(original):
    def add_to_script_impl(self, script, *args, **kwargs):
        from polygraphy.tools.args.backend.trt.loader import TrtLoadPluginsArgs

        # Passed through as given: Polygraphy < 0.50 has no custom_loader_name parameter.
        config_name = original(self, script, *args, **kwargs)
        custom_loader_name = kwargs.get("custom_loader_name", args[0] if args else None)
        plugin_args = self.arg_groups[TrtLoadPluginsArgs] if TrtLoadPluginsArgs in self.arg_groups else None
        # custom_loader_name is set only for the config Polygraphy hands the ONNX parser, not the builder.
        if custom_loader_name is not None or plugin_args is None or not getattr(plugin_args, "embed_plugins", False):
            return config_name
        if config_name is None:
            script.add_import(imports=["CreateConfig"], frm="polygraphy.backend.trt")
            config_name = script.add_loader(make_invocable("CreateConfig"), "create_trt_config")
        script.add_import(imports=["EmbedPluginLibraries"], frm=_LOADER_MODULE)
        return script.add_loader(make_invocable("EmbedPluginLibraries", config_name), "embed_plugins")

    setattr(add_to_script_impl, PATCHED, True)
    return add_to_script_impl


def wrap_engine_add_to_script(original):
    def add_to_script_impl(self, script, network_name=None):
        from polygraphy.tools.args.backend.trt.loader import TrtLoadPluginsArgs
        from polygraphy.tools.args.model import ModelArgs

        engine_name = original(self, script, network_name)
        plugin_args = self.arg_groups[TrtLoadPluginsArgs] if TrtLoadPluginsArgs in self.arg_groups else None
        if plugin_args is None:
            return engine_name
        model_args = self.arg_groups[ModelArgs] if ModelArgs in self.arg_groups else None
        label = model_args.path if model_args is not None and model_args.model_type == "engine" else None
        script.add_import(imports=["ReportMissingEnginePlugins"], frm=_LOADER_MODULE)
        loader_str = make_invocable(
            "ReportMissingEnginePlugins",
            engine_name,
            label=label,
            autoload_shipped=None if getattr(plugin_args, "autoload_plugins", True) else False,
        )
        return script.add_loader(loader_str, "check_engine_plugins")

    setattr(add_to_script_impl, PATCHED, True)
    return add_to_script_impl

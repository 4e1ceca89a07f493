"""``TrtLoadPluginsArgs`` (three methods replaced), ``TrtLoadEngineArgs.add_to_script_impl`` and
``TrtConfigArgs.add_to_script_impl`` (wrapped): plugin-aware ``--plugins`` in every tool that loads TensorRT.
The behaviour lives in ``polygraphy_ext.plugins.args``; this module only installs it."""

from polygraphy_ext.plugins import args as plugin_args


def apply(module):
    if module.__name__ == "polygraphy.tools.args.backend.trt.loader":
        _patch_plugins_args(module.TrtLoadPluginsArgs)
        _wrap_once(module.TrtLoadEngineArgs, plugin_args.wrap_engine_add_to_script)
    elif module.__name__ == "polygraphy.tools.args.backend.trt.config":
        _wrap_once(module.TrtConfigArgs, plugin_args.wrap_config_add_to_script)


def _patch_plugins_args(cls):
    if getattr(cls, plugin_args.PATCHED, False):
        return
    cls.__doc__ = plugin_args.ARGS_DOC
    cls.add_parser_args_impl = plugin_args.add_parser_args_impl
    cls.parse_impl = plugin_args.parse_impl
    cls.add_to_script_impl = plugin_args.add_to_script_impl
    setattr(cls, plugin_args.PATCHED, True)


def _wrap_once(cls, wrap):
    if not getattr(cls.add_to_script_impl, plugin_args.PATCHED, False):
        cls.add_to_script_impl = wrap(cls.add_to_script_impl)

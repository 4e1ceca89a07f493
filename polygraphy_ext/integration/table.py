"""Every Polygraphy attribute polygraphy-ext wraps, replaces, extends or swaps: ONE table.

Upgrading Polygraphy starts here: each row names the attribute, how we touch it, why, and the parameters we
rely on. ``tests/hook/test_integration_contract.py`` asserts, on the installed Polygraphy and with the hook
off, that every attribute still exists with those parameters, and that the hook watches exactly the modules
of the rows it applies.

``how``:
  extend   add entries to a Polygraphy collection (its own entries stay as they are)
  wrap     replace a callable with one that calls the original and adds to its result
  replace  replace a callable outright (Polygraphy's version is not called)
  swap     replaced on one object for the duration of one call only (``util.TempAttrChange`` or
           try/finally), by the code named in ``applied_by``

Rows with ``applied_by`` ``polygraphy_ext.integration.patches.<name>`` are applied by the start-up hook right
after ``module`` executes (``apply_for``); ``swap`` rows are applied by the code they name, at run time.
"""

import importlib
from dataclasses import dataclass
from typing import Optional, Tuple


@dataclass(frozen=True)
class Patch:
    module: str  # the Polygraphy module that defines the attribute
    attribute: str  # dotted from the module; "Class()." marks an attribute set on instances (in __init__)
    how: str  # extend | wrap | replace | swap
    why: str
    params: Optional[Tuple[str, ...]]  # leading parameters we call with or receive; None: not a callable
    applied_by: str  # "polygraphy_ext.integration.patches.x" (hook) or the module that swaps it


_TOOLS = "polygraphy_ext.integration.patches.tools"
_TRT_ARGS = "polygraphy_ext.integration.patches.trt_args"
_ONNXRT = "polygraphy_ext.integration.patches.onnxrt_session"

PATCHES = (
    Patch("polygraphy.tools.registry", "TOOL_REGISTRY", "extend",
          "Polygraphy has no entry point for new tools: `polygraphy rank-profile` is appended as a lazy proxy.",
          None, _TOOLS),
    Patch("polygraphy.tools.surgeon.surgeon", "Surgeon.get_subtools_impl", "wrap",
          "Adds `surgeon fuse-ln` / `align-dims` (lazy proxies) to the subtools Polygraphy lists.",
          ("self",), _TOOLS),
    Patch("polygraphy.tools.args.backend.trt.loader", "TrtLoadPluginsArgs.add_parser_args_impl", "replace",
          "`--plugins` takes directories and 'polygraphy_ext'; adds --no-autoload-plugins / --embed-plugins. "
          "Patched in place: run/convert/inspect/debug instantiate the class by name.",
          ("self",), _TRT_ARGS),
    Patch("polygraphy.tools.args.backend.trt.loader", "TrtLoadPluginsArgs.parse_impl", "replace",
          "Parses the options above.", ("self", "args"), _TRT_ARGS),
    Patch("polygraphy.tools.args.backend.trt.loader", "TrtLoadPluginsArgs.add_to_script_impl", "replace",
          "Scripts LoadPluginLibraries (registry/dlopen by ELF, model plugin check) instead of LoadPlugins (CDLL).",
          ("self", "script", "loader_name"), _TRT_ARGS),
    Patch("polygraphy.tools.args.backend.trt.loader", "TrtLoadEngineArgs.add_to_script_impl", "wrap",
          "Wraps the engine loader in ReportMissingEnginePlugins: a missing plugin creator is one line.",
          ("self", "script", "network_name"), _TRT_ARGS),
    Patch("polygraphy.tools.args.backend.trt.config", "TrtConfigArgs.add_to_script_impl", "wrap",
          "--embed-plugins: wraps the builder config in EmbedPluginLibraries (not the parser's config, which "
          "Polygraphy >= 0.50 asks for with custom_loader_name; passed through as given).",
          ("self", "script"), _TRT_ARGS),
    Patch("polygraphy.backend.onnxrt.loader", "SessionFromOnnx.__init__", "wrap",
          "`run --onnxrt` runs our plugin nodes through their CPU reference ops.",
          ("self", "model_bytes"), _ONNXRT),
    Patch("polygraphy.backend.onnxrt.loader", "SessionFromOnnx()._model_bytes_or_path", "replace",
          "Private: the model SessionFromOnnx reads; replaced by a loader that lowers our plugin nodes.",
          None, _ONNXRT),
    Patch("polygraphy.tools.args.backend.trt.loader", "TrtLoadNetworkArgs.add_to_script", "swap",
          "`run --fuse-ln`: while TensorRT's network loader is scripted, its ONNX loader gets the pass.",
          ("self", "script"), "polygraphy_ext.tools.args.run_route"),
    Patch("polygraphy.tools.args.backend.onnx.loader", "OnnxLoadArgs.add_to_script_impl", "swap",
          "The ONNX loader TensorRT parses, with the pass appended (called with serialize_model=False, then the "
          "pass's output is serialized).", ("self", "script", "disable_custom_outputs", "serialize_model"),
          "polygraphy_ext.tools.args.run_route"),
    Patch("polygraphy.tools.args.backend.onnx.loader", "OnnxLoadArgs.must_use_onnx_loader", "swap",
          "Forces TensorRT to parse the rewritten bytes instead of the model file.", ("self",),
          "polygraphy_ext.tools.args.run_route"),
    Patch("polygraphy.backend.trt.loader", "EngineFromBytes()._serialized_engine", "swap",
          "Private: built/read once before deserializing, so a retry after loading plugins does not rebuild.",
          None, "polygraphy_ext.plugins.engine_failure"),
    Patch("polygraphy.logger", "G_LOGGER.error", "swap",
          "Held back during deserialization, so TensorRT's plugin errors become one line naming the plugins.",
          ("message",), "polygraphy_ext.plugins.engine_failure"),
    Patch("polygraphy.logger", "G_LOGGER.critical", "swap",
          "As above: the critical failure is held and replaced by one naming the missing plugins.",
          ("message", "ExceptionType"), "polygraphy_ext.plugins.engine_failure"),
)


def hooked_modules():
    """The Polygraphy modules whose import the start-up hook must watch."""
    return sorted({p.module for p in PATCHES if p.applied_by.startswith("polygraphy_ext.integration.patches.")})


def apply_for(module):
    """Hook target: apply every patch module whose rows belong to ``module`` (just executed). Idempotent."""
    names = dict.fromkeys(p.applied_by for p in PATCHES if p.module == module.__name__ and p.how != "swap")
    for name in names:
        importlib.import_module(name).apply(module)

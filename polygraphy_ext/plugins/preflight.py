"""Checking an ONNX model's plugin nodes against the registry before TensorRT's parser sees them: every missing
creator is named at once (and the shipped library is loaded when the model uses our plugins)."""

import os
from typing import Tuple

from polygraphy import mod
from polygraphy.logger import G_LOGGER

from polygraphy_ext.plugins.discovery import SHIPPED_LIBRARY_NAME
from polygraphy_ext.plugins.errors import fail
from polygraphy_ext.plugins.library import shipped_library_path
from polygraphy_ext.plugins.model_check import describe_missing, missing_plugins, plugin_uses
from polygraphy_ext.plugins.registry import (
    import_trt,
    is_loaded,
    load_plugin_library,
    registered_with_sources,
    shipped_plugin_keys,
)
from polygraphy_ext.plugins.specs import library_spec

onnx = mod.lazy_import("onnx")


def _native_op_checker(trt):
    """``OnnxParser.supports_operator`` of a throwaway parser; ONNX's schema list if none can be made."""
    from polygraphy.backend.trt import util as trt_util
    from polygraphy_ext.plugins.model_check import onnx_standard_op

    try:
        logger = trt_util.get_trt_logger()
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
    except Exception:
        return onnx_standard_op
    cache = {}

    def is_native(op_type: str, domain: str) -> bool:
        if op_type not in cache:
            cache[op_type] = bool(parser.supports_operator(op_type))
        return cache[op_type]

    # Keep the parser's network and builder alive as long as the checker.
    is_native.keepalive = (builder, network, parser)
    return is_native


def _load_model_header(model) -> Tuple[object, str]:
    """(ModelProto without external weights, label) from a path, serialized bytes or a ModelProto."""
    if isinstance(model, onnx.ModelProto):
        return model, "the model"
    if isinstance(model, (bytes, bytearray, memoryview)):
        return onnx.load_model_from_string(bytes(model)), "the model"
    return onnx.load(os.fspath(model), load_external_data=False), os.fspath(model)



def check_model_plugins(model, autoload_shipped: bool = True) -> None:
    """Fail with one line naming every plugin ``model`` needs that no registered creator provides.

    When the model uses the shipped library's plugins and ``autoload_shipped`` is set, that library is
    loaded first (if it was built).
    """
    trt = import_trt()
    proto, label = _load_model_header(model)
    uses = plugin_uses(proto, _native_op_checker(trt))
    if not uses:
        return
    ours = shipped_plugin_keys()
    shipped = shipped_library_path()
    spec = library_spec()
    # A use of our namespace or domain counts even for a plugin this version does not know: loading the
    # library is what tells the user which plugins it has.
    uses_ours = any(
        use.key in ours or any(spec.claims(domain, use.key.namespace) for domain in use.domains | {""})
        for use in uses
    )
    if autoload_shipped and shipped is not None and uses_ours:
        if not is_loaded(shipped):
            G_LOGGER.info(f"{label} uses polygraphy-ext plugins: loading {shipped} automatically")
        load_plugin_library(shipped)

    registered = registered_with_sources(trt)
    missing = missing_plugins(uses, registered)
    if not missing:
        G_LOGGER.verbose(f"{label}: all {len(uses)} plugin(s) it uses are registered")
        return

    if shipped is None:
        ours_hint = "polygraphy-ext's shipped library, which is not built in this installation"
    elif autoload_shipped:
        ours_hint = f"polygraphy-ext's shipped library {shipped}"
    else:
        ours_hint = f"--plugins {SHIPPED_LIBRARY_NAME} (automatic loading is off: --no-autoload-plugins)"
    fail(describe_missing(label, missing, registered, {key: ours_hint for key in ours}))


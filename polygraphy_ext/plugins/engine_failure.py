"""Explaining a failed engine deserialization: TensorRT's log says which plugin creators it looked up and did not
find; ``ReportMissingEnginePlugins`` turns that into one line naming them (and, when only our plugins are
missing, loads the shipped library and tries once more)."""

import contextlib
import re
from typing import Iterable, List, Sequence, Tuple

from polygraphy import mod, util
from polygraphy.backend.base import BaseLoader
from polygraphy.exception import PolygraphyException
from polygraphy.logger import G_LOGGER

from polygraphy_ext.plugins.discovery import SHIPPED_LIBRARY_NAME
from polygraphy_ext.plugins.errors import fail
from polygraphy_ext.plugins.library import shipped_library_path
from polygraphy_ext.plugins.model_check import PluginKey, PluginUse, describe_plugins
from polygraphy_ext.plugins.registry import (
    import_trt,
    is_loaded,
    load_plugin_library,
    registered_with_sources,
    shipped_plugin_keys,
)

# What TensorRT logs when deserialization looks up a creator the registry lacks. TensorRT 10 / TensorRT-RTX:
# "Cannot find plugin: <name><namespace>, version: <version>, namespace:<namespace>." (the name carries the
# namespace as a suffix); TensorRT 8: "getPluginCreator could not find plugin: <name> version: <version>".
_CANNOT_FIND_PLUGIN = re.compile(
    r"Cannot find plugin: (?P<name>[^,]*), version: (?P<version>[^,]*), namespace:(?P<namespace>\S*?)\.?(?:\s|$)"
)
_COULD_NOT_FIND_PLUGIN = re.compile(r"could not find plugin:? (?P<name>\S+) version:? (?P<version>\S+)")
_UNNAMED_MISSING_PLUGIN = re.compile(r"IPluginCreator\w* not found in Plugin Registry")


def missing_creators_in_log(messages: Iterable[str]) -> Tuple[List[PluginKey], bool]:
    """(creators TensorRT's messages say it looked up and did not find, whether any message says a plugin
    could not be deserialized for want of its creator). Namespace is "" where TensorRT does not say."""
    keys: List[PluginKey] = []
    unnamed = False
    for message in messages:
        match = _CANNOT_FIND_PLUGIN.search(message)
        if match:
            name, namespace = match["name"], match["namespace"]
            if namespace and name.endswith(namespace) and len(name) > len(namespace):
                name = name[: -len(namespace)]
            key = PluginKey(name, match["version"], namespace)
        else:
            match = _COULD_NOT_FIND_PLUGIN.search(message)
            key = PluginKey(match["name"], match["version"], "") if match else None
        if key is not None and key not in keys:
            keys.append(key)
        unnamed = unnamed or bool(_UNNAMED_MISSING_PLUGIN.search(message))
    return keys, unnamed


class _HeldFailure(PolygraphyException):
    def __init__(self, message, exception_type):
        super().__init__(message)
        self.message = message
        self.exception_type = exception_type


@contextlib.contextmanager
def _hold_errors():
    """Hold back the errors and the critical failure logged meanwhile, so that they can be replaced by one line.

    Yields the list the error messages collect in; a ``G_LOGGER.critical`` meanwhile raises ``_HeldFailure``
    without printing.
    """
    held: List[str] = []

    def error(message, *args, **kwargs):
        held.append(message() if callable(message) else str(message))

    def critical(message, ExceptionType=None):
        raise _HeldFailure(message() if callable(message) else str(message), ExceptionType)

    with util.TempAttrChange(G_LOGGER, {"error": error, "critical": critical}):
        yield held


def _replay(messages: Sequence[str]):
    for message in messages:
        G_LOGGER.error(message)


def _engine_failure_message(label: str, keys: Sequence[PluginKey], trt) -> str:
    registered = registered_with_sources(trt)
    shipped = shipped_library_path()
    ours = {key: f"polygraphy-ext's shipped library (--plugins {SHIPPED_LIBRARY_NAME})" for key in shipped_plugin_keys()}
    if shipped is None:
        ours = {key: "polygraphy-ext's shipped library, which is not built in this installation" for key in ours}
    if keys:
        uses = [PluginUse(key) for key in keys]
        return (
            f"{label} could not be deserialized: it uses TensorRT plugin(s) that are not registered: "
            + describe_plugins(uses, registered, ours)
            + ". Load the libraries that provide them with --plugins."
        )
    hint = ""
    if shipped is not None and not is_loaded(shipped):
        hint = f" (for polygraphy-ext's own plugins: --plugins {SHIPPED_LIBRARY_NAME})"
    return (
        f"{label} could not be deserialized: it uses a TensorRT plugin whose creator is not registered (TensorRT "
        f"does not say which). Load the plugin libraries it was built with via --plugins{hint}."
    )


@mod.export(funcify=True)
class ReportMissingEnginePlugins(BaseLoader):
    """
    A passthrough loader around an engine loader (e.g. ``EngineFromBytes``): when deserialization fails because
    the engine uses plugins whose creators are not registered, it fails with one line naming them instead of
    TensorRT's log. If they are all polygraphy-ext's own plugins, the shipped library is loaded and
    deserialization tried once more.
    """

    def __init__(self, engine, label=None, autoload_shipped=None):
        """
        Args:
            engine (Callable() -> trt.ICudaEngine):
                    The engine loader to call, e.g. ``EngineFromBytes(...)``.
            label (str):
                    How to name the engine in messages, e.g. its path. Defaults to "the engine".
            autoload_shipped (bool):
                    Load polygraphy-ext's shipped library and retry when only its plugins are missing.
                    Defaults to True.
        """
        self._engine = engine
        self.label = util.default(label, "the engine")
        self.autoload_shipped = util.default(autoload_shipped, True)

    def _attempt(self):
        """(engine, None) or (None, (failure, held error messages))."""
        held: List[str] = []
        try:
            with _hold_errors() as held:
                engine, _ = util.invoke_if_callable(self._engine)
        except _HeldFailure as failure:
            return None, (failure, held)
        except BaseException:
            _replay(held)
            raise
        _replay(held)
        return engine, None

    def _plan_first(self):
        """Context in which the wrapped ``EngineFromBytes`` gets its plan already built (or read).

        Only deserialization's messages are ours to explain: a build's (or the model check's) errors must show
        as they happen, and a retry must not build the engine again.
        """
        source = getattr(self._engine, "_serialized_engine", None)  # Polygraphy's EngineFromBytes
        if not callable(source):
            return contextlib.nullcontext()
        plan, _ = util.invoke_if_callable(source)
        return util.TempAttrChange(self._engine, {"_serialized_engine": plan})

    @util.check_called_by("__call__")
    def call_impl(self):
        """
        Returns:
            trt.ICudaEngine: The engine the wrapped loader returns.
        """
        trt = import_trt()
        with self._plan_first():
            return self._deserialize(trt)

    def _deserialize(self, trt):
        retried = False
        while True:
            engine, failed = self._attempt()
            if failed is None:
                return engine
            failure, held = failed
            keys, unnamed = missing_creators_in_log(held)
            shipped = shipped_library_path()
            ours = shipped_plugin_keys()
            if (
                not retried
                and keys
                and self.autoload_shipped
                and shipped is not None
                and not is_loaded(shipped)
                and all(key in ours for key in keys)
            ):
                G_LOGGER.info(f"{self.label} uses polygraphy-ext plugins: loading {shipped} automatically")
                for message in held:
                    G_LOGGER.verbose(f"TensorRT: {message}")
                load_plugin_library(shipped)
                retried = True
                continue
            if keys or unnamed:
                for message in held:
                    G_LOGGER.verbose(f"TensorRT: {message}")
                fail(_engine_failure_message(self.label, keys, trt))
            # Not a plugin problem: show what was held back and fail as the wrapped loader would have.
            _replay(held)
            G_LOGGER.critical(failure.message, ExceptionType=failure.exception_type)


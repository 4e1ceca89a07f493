"""Loads TensorRT plugin libraries the way TensorRT expects, and checks models against the registry.

``LoadPluginLibraries`` is a drop-in for Polygraphy's ``LoadPlugins`` (a passthrough lazy loader), used by
``--plugins`` on run/convert/inspect/debug and in ``--gen-script`` output. Differences, each for a reason
given in docs/plugins-loading.md:

- TensorRT (or TensorRT-RTX) is imported first, so a library linked against it finds it already loaded.
- Each library is inspected before dlopen (``elf.py``); one exporting ``getCreators`` goes through
  ``IPluginRegistry.load_library`` (``ctypes.CDLL`` registers nothing for those), one with static
  registration through dlopen. The creators each library added are logged.
- A library is registered once per process however often it is named.
- Given an ONNX model, every plugin node is checked against the registry before the parser sees it, and the
  shipped library is loaded automatically when the model uses our plugin namespace.
- Libraries are only ever opened by absolute path: nothing is searched for in the current directory, on
  ``LD_LIBRARY_PATH`` or elsewhere.

``ReportMissingEnginePlugins`` wraps engine deserialization: a failure for want of plugin creators becomes one
line naming them (and loads the shipped library and retries when only its plugins are missing).
``EmbedPluginLibraries`` puts the loaded libraries into built engines.
"""

import collections
import contextlib
import ctypes
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from polygraphy import mod, util
from polygraphy.backend.base import BaseLoader
from polygraphy.exception import PolygraphyException
from polygraphy.logger import G_LOGGER, LogMode

from polygraphy_ext.plugins import elf, trt_env
from polygraphy_ext.plugins.library import shipped_library_path
from polygraphy_ext.plugins.model_check import (
    PluginKey,
    PluginUse,
    describe_missing,
    describe_plugins,
    missing_plugins,
    plugin_uses,
)
from polygraphy_ext.plugins.specs import library_spec

onnx = mod.lazy_import("onnx")

# The documented name of the library built from trt_plugins/, accepted by --plugins in place of a path.
SHIPPED_LIBRARY_NAME = "polygraphy_ext"

VIA_REGISTRY = "plugin registry (getCreators)"
VIA_DLOPEN = "dlopen (static registration)"
_REGISTRATION_IMPORTS = ("getPluginRegistry", "getBuilderPluginRegistry")
_ALREADY_REGISTERED = re.compile(r"creator of (\S+) exists already|already registered", re.IGNORECASE)
# "libfoo.so", "libfoo.so.10", "libfoo.so.10.3"; not "ld.so.cache" or "libfoo.so.bak".
_LIBRARY_NAME = re.compile(r".+\.so(\.\d+)*")


class PluginLoadError(PolygraphyException):
    """A plugin library or a model's plugin nodes cannot be used; the message is one line and says why."""


def _fail(message: str):
    G_LOGGER.critical(message, ExceptionType=PluginLoadError)


@dataclass(frozen=True)
class LoadedLibrary:
    path: Path
    how: str
    creators: Tuple[PluginKey, ...]


# realpath -> LoadedLibrary. TensorRT refuses to register a library twice, and Polygraphy's CLI wraps three
# loaders (parse, build, deserialize) with the plugin loader, so loading must be idempotent per process.
_LOADED: Dict[str, LoadedLibrary] = {}


def loaded_libraries() -> List[LoadedLibrary]:
    """Libraries this process has loaded through polygraphy-ext, in load order."""
    return list(_LOADED.values())


# ----------------------------------------------------------------------------------------------------------
# Resolving --plugins arguments to files


def _is_library_name(entry: Path) -> bool:
    return _LIBRARY_NAME.fullmatch(entry.name) is not None


def _plugin_libraries_in(directory: Path, spec: str) -> List[Path]:
    """The plugin libraries directly inside ``directory``, in name order.

    Vendors ship plugin libraries next to the shared libraries they depend on; those are skipped (the dynamic
    linker finds them through the plugin library's own dependencies) rather than rejected.
    """
    candidates = sorted(entry for entry in directory.iterdir() if entry.is_file() and _is_library_name(entry))
    found, skipped = [], []
    for entry in candidates:
        if _loading_method(entry) is None:
            skipped.append(entry.name)
        else:
            found.append(entry)
    if not found:
        detail = f"; what it has ({', '.join(skipped)}) registers no plugin creators" if skipped else ""
        _fail(f"plugin directory {spec} contains no plugin libraries (*.so / *.so.*){detail}")
    if skipped:
        G_LOGGER.info(
            f"Plugin directory {spec}: skipping {', '.join(skipped)} (not TensorRT plugin libraries)", mode=LogMode.ONCE
        )
    return found


def resolve_plugin_paths(specs: Iterable) -> List[Path]:
    """Expand --plugins arguments (files, directories, the shipped name) to absolute library paths, in order."""
    paths: List[Path] = []
    for spec in specs:
        spec = os.fspath(spec)
        if spec == SHIPPED_LIBRARY_NAME:
            shipped = shipped_library_path()
            if shipped is None:
                _fail(
                    f"--plugins {SHIPPED_LIBRARY_NAME}: the shipped plugin library "
                    f"({library_spec().library_file}) was not built in this installation; reinstall "
                    "polygraphy-ext with nvcc on PATH (or set CUDACXX)"
                )
            paths.append(shipped.resolve())
            continue
        path = Path(spec).expanduser().absolute()
        if not path.exists():
            _fail(f"plugin library {spec} does not exist")
        if path.is_dir():
            paths.extend(_plugin_libraries_in(path, spec))
        else:
            paths.append(path)
    return paths


def _read_library(path: Path) -> elf.SharedLibraryInfo:
    try:
        return elf.read_shared_library(path)
    except elf.NotALoadableLibrary as err:
        _fail(str(err))
    except OSError as err:
        _fail(f"plugin library {path} cannot be read: {err.strerror}")


def _loading_method(path: Path, info: Optional[elf.SharedLibraryInfo] = None) -> Optional[str]:
    """VIA_REGISTRY, VIA_DLOPEN, or None for a shared library that registers no plugins at all."""
    info = info or _read_library(path)
    if "getCreators" in info.exported:
        if "setLoggerFinder" not in info.exported:
            _fail(
                f"{path} exports getCreators but not setLoggerFinder; TensorRT's plugin registry requires both "
                'entry points (extern "C") and will not load it'
            )
        return VIA_REGISTRY
    if any(symbol in info.imported for symbol in _REGISTRATION_IMPORTS):
        return VIA_DLOPEN
    return None


def inspect_library(path: Path) -> Tuple[elf.SharedLibraryInfo, str]:
    """Read ``path`` and decide how it must be loaded; fail with the reason if it cannot be."""
    info = _read_library(path)
    how = _loading_method(path, info)
    if how is None:
        _fail(
            f"{path} is not a TensorRT plugin library: it neither exports getCreators/setLoggerFinder nor registers "
            "creators statically (REGISTER_TENSORRT_PLUGIN)"
        )
    return info, how


# ----------------------------------------------------------------------------------------------------------
# Talking to TensorRT


def _trt():
    trt = trt_env.import_trt()
    if not getattr(_trt, "_logger_installed", False):
        # TensorRT logs registry errors to the first logger any runtime/builder was created with; make that
        # Polygraphy's so that _capture_trt_errors sees them. init_libnvinfer_plugins registers TensorRT's own
        # plugins, which the model check must know about before Polygraphy's parser would register them.
        from polygraphy.backend.trt import util as trt_util

        logger = trt_util.get_trt_logger()
        with contextlib.suppress(Exception):
            _trt.runtime = trt.Runtime(logger)  # kept alive: TensorRT forgets the logger with its last owner
        with contextlib.suppress(Exception):
            trt.init_libnvinfer_plugins(logger, "")
        _trt._logger_installed = True
        # The TensorRT-RTX parser aborts the process on the first plugin node unless this link exists.
        if trt_env.using_rtx():
            try:
                trt_env.ensure_rtx_parser_library()
            except trt_env.TrtEnvironmentError as err:
                _fail(str(err))
    return trt


def _creator_key(creator) -> PluginKey:
    return PluginKey(
        str(creator.name),
        str(getattr(creator, "plugin_version", "")),
        str(getattr(creator, "plugin_namespace", "")),
    )


def registered_creators(trt) -> List[PluginKey]:
    return [_creator_key(creator) for creator in trt.get_plugin_registry().all_creators]


@contextlib.contextmanager
def _capture_trt_errors():
    """Collect (instead of printing) the errors TensorRT logs through Polygraphy's logger meanwhile."""
    captured: List[str] = []

    def capture(message, *args, **kwargs):
        captured.append(message() if callable(message) else str(message))

    with util.TempAttrChange(G_LOGGER, {"error": capture}):
        yield captured
    for message in captured:
        G_LOGGER.verbose(f"TensorRT: {message}")


def _provider_of(key_name: str) -> str:
    owners = [str(lib.path) for lib in _LOADED.values() if any(key.name == key_name for key in lib.creators)]
    return owners[0] if owners else "a library loaded earlier (or TensorRT itself)"


def _refused(path: Path, trt_errors: Sequence[str], what: str):
    for message in trt_errors:
        match = _ALREADY_REGISTERED.search(message)
        if match and match.group(1):
            name = match.group(1)
            _fail(
                f"{path} provides plugin creator {name}, which {_provider_of(name)} already registered; "
                "load only one library per creator"
            )
    detail = next((m for m in trt_errors if "cudaError" not in m), None)
    _fail(f"TensorRT could not load {path} ({what})" + (f": {detail}" if detail else ""))


def _describe_dlopen_failure(path: Path, info: elf.SharedLibraryInfo, err: OSError) -> str:
    message = f"{path} could not be loaded: {err}"
    trt_sonames = [name for name in info.needed if name.startswith(("libnvinfer", "libtensorrt"))]
    if trt_sonames and "cannot open shared object file" in str(err):
        which = "TensorRT-RTX" if trt_env.using_rtx() else "TensorRT"
        message += (
            f" (it links against {', '.join(trt_sonames)}; this process uses {which}: "
            "build the plugin library against the TensorRT you run with)"
        )
    return message


def load_plugin_library(path: Path) -> LoadedLibrary:
    """Load one library (once per process) and return what it registered."""
    path = Path(path).absolute()
    real = os.path.realpath(path)
    if real in _LOADED:
        return _LOADED[real]
    info, how = inspect_library(path)
    trt = _trt()
    registry = trt.get_plugin_registry()
    # Counted, not a set: a statically registering library can add a second creator under a key that is
    # already registered, and TensorRT accepts it.
    before = collections.Counter(registered_creators(trt))
    with _capture_trt_errors() as trt_errors:
        if how == VIA_REGISTRY:
            handle = registry.load_library(str(path))
        else:
            try:
                # RTLD_GLOBAL so that symbols the library's creators share are visible to later libraries.
                handle = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            except OSError as err:
                handle = None
                _fail(_describe_dlopen_failure(path, info, err))
    if handle is None:
        _refused(path, trt_errors, how)
    added_counts = collections.Counter(registered_creators(trt)) - before
    duplicates = sorted(key for key in added_counts if key in before)
    if duplicates:
        owners = "; ".join(f"{key}, which {_provider_of(key.name)} already registered" for key in duplicates)
        _fail(f"{path} provides plugin creator {owners}; load only one library per creator")
    added = tuple(added_counts)
    if not added:
        _refused(path, trt_errors, f"{how}: it registered no plugin creators")
    loaded = LoadedLibrary(path, how, added)
    _LOADED[real] = loaded
    G_LOGGER.info(
        f"Loaded plugin library {path} via {how}; creators added: " + ", ".join(str(key) for key in added)
    )
    return loaded


def load_libraries(specs: Iterable) -> List[LoadedLibrary]:
    """Resolve and load every --plugins argument; a library named twice is loaded once."""
    seen = set()
    loaded = []
    for path in resolve_plugin_paths(specs):
        real = os.path.realpath(path)
        if real in seen:
            G_LOGGER.warning(f"Plugin library {path} was given more than once; loading it once", mode=LogMode.ONCE)
            continue
        seen.add(real)
        loaded.append(load_plugin_library(path))
    return loaded


# ----------------------------------------------------------------------------------------------------------
# Checking a model before the parser sees it


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


def _registered_with_sources(trt) -> Dict[PluginKey, Optional[str]]:
    """Every registered creator -> the library polygraphy-ext loaded it from (None: TensorRT's own, or not ours)."""
    registered = {key: None for key in registered_creators(trt)}
    for lib in _LOADED.values():
        for key in lib.creators:
            registered[key] = str(lib.path)
    return registered


def shipped_plugin_keys() -> Dict[PluginKey, str]:
    spec = library_spec()
    return {PluginKey(p.name, p.version, p.namespace): p.name for p in spec.plugins.values()}


def check_model_plugins(model, autoload_shipped: bool = True) -> None:
    """Fail with one line naming every plugin ``model`` needs that no registered creator provides.

    When the model uses the shipped library's plugins and ``autoload_shipped`` is set, that library is
    loaded first (if it was built).
    """
    trt = _trt()
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
        if os.path.realpath(shipped) not in _LOADED:
            G_LOGGER.info(f"{label} uses polygraphy-ext plugins: loading {shipped} automatically")
        load_plugin_library(shipped)

    registered = _registered_with_sources(trt)
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
    _fail(describe_missing(label, missing, registered, {key: ours_hint for key in ours}))


# ----------------------------------------------------------------------------------------------------------
# Explaining a failed engine deserialization

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
    registered = _registered_with_sources(trt)
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
    if shipped is not None and os.path.realpath(shipped) not in _LOADED:
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
        trt = _trt()
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
                and os.path.realpath(shipped) not in _LOADED
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
                _fail(_engine_failure_message(self.label, keys, trt))
            # Not a plugin problem: show what was held back and fail as the wrapped loader would have.
            _replay(held)
            G_LOGGER.critical(failure.message, ExceptionType=failure.exception_type)


# ----------------------------------------------------------------------------------------------------------
# Polygraphy loaders


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
        _trt()
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
            _fail("--embed-plugins: no plugin libraries were loaded, so there is nothing to embed in the engine")
        if not hasattr(config, "plugins_to_serialize"):
            _fail("--embed-plugins: this TensorRT has no IBuilderConfig.plugins_to_serialize (needs TensorRT 8.6+)")
        config.plugins_to_serialize = paths
        G_LOGGER.info("Embedding plugin libraries in the engine: " + ", ".join(paths))
        return config

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
"""

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
from polygraphy_ext.plugins.model_check import PluginKey, describe_missing, missing_plugins, plugin_uses
from polygraphy_ext.plugins.specs import library_spec

onnx = mod.lazy_import("onnx")

# The documented name of the library built from trt_plugins/, accepted by --plugins in place of a path.
SHIPPED_LIBRARY_NAME = "polygraphy_ext"

VIA_REGISTRY = "plugin registry (getCreators)"
VIA_DLOPEN = "dlopen (static registration)"
_REGISTRATION_IMPORTS = ("getPluginRegistry", "getBuilderPluginRegistry")
_ALREADY_REGISTERED = re.compile(r"creator of (\S+) exists already|already registered", re.IGNORECASE)


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
    name = entry.name
    return name.endswith(".so") or ".so." in name


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
            found = sorted(entry for entry in path.iterdir() if entry.is_file() and _is_library_name(entry))
            if not found:
                _fail(f"plugin directory {spec} contains no plugin libraries (*.so / *.so.*)")
            paths.extend(found)
        else:
            paths.append(path)
    return paths


def inspect_library(path: Path) -> Tuple[elf.SharedLibraryInfo, str]:
    """Read ``path`` and decide how it must be loaded; fail with the reason if it cannot be."""
    try:
        info = elf.read_shared_library(path)
    except elf.NotALoadableLibrary as err:
        _fail(str(err))
    except OSError as err:
        _fail(f"plugin library {path} cannot be read: {err.strerror}")
    if "getCreators" in info.exported:
        if "setLoggerFinder" not in info.exported:
            _fail(
                f"{path} exports getCreators but not setLoggerFinder; TensorRT's plugin registry requires both "
                'entry points (extern "C") and will not load it'
            )
        return info, VIA_REGISTRY
    if any(symbol in info.imported for symbol in _REGISTRATION_IMPORTS):
        return info, VIA_DLOPEN
    _fail(
        f"{path} is not a TensorRT plugin library: it neither exports getCreators/setLoggerFinder nor registers "
        "creators statically (REGISTER_TENSORRT_PLUGIN)"
    )


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


def registered_creators(trt) -> List[PluginKey]:
    keys = []
    for creator in trt.get_plugin_registry().all_creators:
        keys.append(
            PluginKey(
                str(creator.name),
                str(getattr(creator, "plugin_version", "")),
                str(getattr(creator, "plugin_namespace", "")),
            )
        )
    return keys


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
    before = set(registered_creators(trt))
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
    added = tuple(key for key in registered_creators(trt) if key not in before)
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
    uses_ours = any(
        use.key in ours or use.key.namespace == spec.namespace or spec.onnx_domain in use.domains for use in uses
    )
    if autoload_shipped and shipped is not None and uses_ours:
        if os.path.realpath(shipped) not in _LOADED:
            G_LOGGER.info(f"{label} uses polygraphy-ext plugins: loading {shipped} automatically")
        load_plugin_library(shipped)

    registered = {key: None for key in registered_creators(trt)}
    for lib in _LOADED.values():
        for key in lib.creators:
            registered[key] = str(lib.path)
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

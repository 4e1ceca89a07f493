"""TensorRT's plugin registry as polygraphy-ext uses it: the TensorRT module (with its logger set up), the
libraries this process loaded (once each: module-level state, because TensorRT's registry is per process too),
and loading one library by the method its symbols call for."""

import collections
import contextlib
import ctypes
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from polygraphy import util
from polygraphy.logger import G_LOGGER, LogMode

from polygraphy_ext.plugins import elf, trt_env
from polygraphy_ext.plugins.discovery import VIA_REGISTRY, inspect_library, resolve_plugin_paths
from polygraphy_ext.plugins.errors import fail
from polygraphy_ext.plugins.model_check import PluginKey
from polygraphy_ext.plugins.specs import library_spec

_ALREADY_REGISTERED = re.compile(r"creator of (\S+) exists already|already registered", re.IGNORECASE)


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



def is_loaded(path) -> bool:
    return os.path.realpath(path) in _LOADED


def import_trt():
    trt = trt_env.import_trt()
    if not getattr(import_trt, "_logger_installed", False):
        # TensorRT logs registry errors to the first logger any runtime/builder was created with; make that
        # Polygraphy's so that _capture_trt_errors sees them. init_libnvinfer_plugins registers TensorRT's own
        # plugins, which the model check must know about before Polygraphy's parser would register them.
        from polygraphy.backend.trt import util as trt_util

        logger = trt_util.get_trt_logger()
        with contextlib.suppress(Exception):
            import_trt.runtime = trt.Runtime(logger)  # kept alive: TensorRT forgets the logger with its last owner
        with contextlib.suppress(Exception):
            trt.init_libnvinfer_plugins(logger, "")
        import_trt._logger_installed = True
        # The TensorRT-RTX parser aborts the process on the first plugin node unless this link exists.
        if trt_env.using_rtx():
            try:
                trt_env.ensure_rtx_parser_library()
            except trt_env.TrtEnvironmentError as err:
                fail(str(err))
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
            fail(
                f"{path} provides plugin creator {name}, which {_provider_of(name)} already registered; "
                "load only one library per creator"
            )
    detail = next((m for m in trt_errors if "cudaError" not in m), None)
    fail(f"TensorRT could not load {path} ({what})" + (f": {detail}" if detail else ""))


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
    trt = import_trt()
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
                fail(_describe_dlopen_failure(path, info, err))
    if handle is None:
        _refused(path, trt_errors, how)
    added_counts = collections.Counter(registered_creators(trt)) - before
    duplicates = sorted(key for key in added_counts if key in before)
    if duplicates:
        owners = "; ".join(f"{key}, which {_provider_of(key.name)} already registered" for key in duplicates)
        fail(f"{path} provides plugin creator {owners}; load only one library per creator")
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



def registered_with_sources(trt) -> Dict[PluginKey, Optional[str]]:
    """Every registered creator -> the library polygraphy-ext loaded it from (None: TensorRT's own, or not ours)."""
    registered = {key: None for key in registered_creators(trt)}
    for lib in _LOADED.values():
        for key in lib.creators:
            registered[key] = str(lib.path)
    return registered


def shipped_plugin_keys() -> Dict[PluginKey, str]:
    spec = library_spec()
    return {PluginKey(p.name, p.version, p.namespace): p.name for p in spec.plugins.values()}


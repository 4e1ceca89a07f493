"""What ``--plugins`` names, as files: paths, directories and the shipped library's name resolved to libraries,
and how each must be loaded (read from its ELF symbols before anything is opened)."""

import os
import re
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

from polygraphy.logger import G_LOGGER, LogMode

from polygraphy_ext.plugins import elf
from polygraphy_ext.plugins.errors import fail
from polygraphy_ext.plugins.library import shipped_library_path
from polygraphy_ext.plugins.specs import library_spec

# The documented name of the library built from trt_plugins/, accepted by --plugins in place of a path.
SHIPPED_LIBRARY_NAME = "polygraphy_ext"

VIA_REGISTRY = "plugin registry (getCreators)"
VIA_DLOPEN = "dlopen (static registration)"
_REGISTRATION_IMPORTS = ("getPluginRegistry", "getBuilderPluginRegistry")
# "libfoo.so", "libfoo.so.10", "libfoo.so.10.3"; not "ld.so.cache" or "libfoo.so.bak".
_LIBRARY_NAME = re.compile(r".+\.so(\.\d+)*")


def is_library_name(entry: Path) -> bool:
    return _LIBRARY_NAME.fullmatch(entry.name) is not None


def _plugin_libraries_in(directory: Path, spec: str) -> List[Path]:
    """The plugin libraries directly inside ``directory``, in name order.

    Vendors ship plugin libraries next to the shared libraries they depend on; those are skipped (the dynamic
    linker finds them through the plugin library's own dependencies) rather than rejected.
    """
    candidates = sorted(entry for entry in directory.iterdir() if entry.is_file() and is_library_name(entry))
    found, skipped = [], []
    for entry in candidates:
        if loading_method(entry) is None:
            skipped.append(entry.name)
        else:
            found.append(entry)
    if not found:
        detail = f"; what it has ({', '.join(skipped)}) registers no plugin creators" if skipped else ""
        fail(f"plugin directory {spec} contains no plugin libraries (*.so / *.so.*){detail}")
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
                fail(
                    f"--plugins {SHIPPED_LIBRARY_NAME}: the shipped plugin library "
                    f"({library_spec().library_file}) was not built in this installation; reinstall "
                    "polygraphy-ext with nvcc on PATH (or set CUDACXX)"
                )
            paths.append(shipped.resolve())
            continue
        path = Path(spec).expanduser().absolute()
        if not path.exists():
            fail(f"plugin library {spec} does not exist")
        if path.is_dir():
            paths.extend(_plugin_libraries_in(path, spec))
        else:
            paths.append(path)
    return paths


def _read_library(path: Path) -> elf.SharedLibraryInfo:
    try:
        return elf.read_shared_library(path)
    except elf.NotALoadableLibrary as err:
        fail(str(err))
    except OSError as err:
        fail(f"plugin library {path} cannot be read: {err.strerror}")


def loading_method(path: Path, info: Optional[elf.SharedLibraryInfo] = None) -> Optional[str]:
    """VIA_REGISTRY, VIA_DLOPEN, or None for a shared library that registers no plugins at all."""
    info = info or _read_library(path)
    if "getCreators" in info.exported:
        if "setLoggerFinder" not in info.exported:
            fail(
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
    how = loading_method(path, info)
    if how is None:
        fail(
            f"{path} is not a TensorRT plugin library: it neither exports getCreators/setLoggerFinder nor registers "
            "creators statically (REGISTER_TENSORRT_PLUGIN)"
        )
    return info, how


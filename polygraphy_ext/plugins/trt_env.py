"""Which TensorRT this process uses, and the environment fixes it needs before parsing plugin nodes.

Product code imports TensorRT through Polygraphy's ``lazy_import_trt`` so that the same code serves
``tensorrt`` and ``tensorrt_rtx`` (``POLYGRAPHY_USE_TENSORRT_RTX=1``).
"""

import os
from pathlib import Path
from typing import Optional

RTX_LIB = "libtensorrt_rtx.so"


class TrtEnvironmentError(RuntimeError):
    """The TensorRT installation cannot be used as it is; the message says how to fix it."""


def using_rtx() -> bool:
    from polygraphy import config

    return bool(config.USE_TENSORRT_RTX)


def import_trt():
    """The TensorRT module Polygraphy is configured for (tensorrt or tensorrt_rtx), imported now."""
    from polygraphy.mod.trt_importer import lazy_import_trt

    trt = lazy_import_trt()
    trt.__version__  # force the lazy import, so a missing TensorRT fails here and not later
    return trt


def _rtx_libs_dir() -> Optional[Path]:
    import importlib.util

    spec = importlib.util.find_spec("tensorrt_rtx_libs")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def ensure_rtx_parser_library() -> Optional[Path]:
    """Make sure the unversioned ``libtensorrt_rtx.so`` the TensorRT-RTX ONNX parser dlopens exists.

    The parser dlopens ``libtensorrt_rtx.so`` when it meets a plugin node; the wheel ships only
    ``libtensorrt_rtx.so.1``, and without the unversioned name the process aborts (no exception).
    Creates the symlink next to the versioned library when that directory is writable; otherwise raises
    ``TrtEnvironmentError`` with the exact command that fixes it. Returns the link path (None when the
    TensorRT-RTX wheel layout is not present, e.g. a system install that has its own linker setup).
    """
    libs = _rtx_libs_dir()
    if libs is None:
        return None
    link = libs / RTX_LIB
    if link.exists():
        return link
    versioned = sorted(libs.glob(RTX_LIB + ".*"))
    if not versioned:
        return None
    target = versioned[0].name
    try:
        if link.is_symlink():  # dangling link left by an older install
            link.unlink()
        os.symlink(target, link)
    except FileExistsError:
        # Another process (parallel test workers, two polygraphy runs) made it between the check and here.
        if link.exists():
            return link
        raise TrtEnvironmentError(
            f"TensorRT-RTX's ONNX parser needs {link} (it would abort the process without it); a dangling link "
            f"is in the way. Fix: ln -sf {target} {link}"
        ) from None
    except OSError as err:
        raise TrtEnvironmentError(
            f"TensorRT-RTX's ONNX parser needs {link} (it would abort the process without it) and it could not be "
            f"created ({err.strerror}). Fix: ln -s {target} {link}"
        ) from None
    return link

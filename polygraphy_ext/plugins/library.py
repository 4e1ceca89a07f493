"""Where the shipped plugin library lives inside the installed package."""

import site
import sysconfig
from importlib import resources
from pathlib import Path
from typing import List, Optional

from polygraphy_ext.plugins.specs import library_spec


def _site_directories() -> List[Path]:
    dirs = [sysconfig.get_paths().get(key) for key in ("purelib", "platlib")]
    dirs.extend(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return [Path(d) for d in dict.fromkeys(dirs) if d]


def shipped_library_path() -> Optional[Path]:
    """Path of libpolygraphy_ext_plugins.so installed with the package, or None if it was not built.

    A regular install has it in the package directory. An editable install keeps the Python sources in the
    checkout while the build installs the library into site-packages/polygraphy_ext/lib, so the site
    directories are looked in as well. Not the rest of sys.path: that holds the script's directory (or the
    current one), and a library lying there must never be picked up as ours.
    """
    name = library_spec().library_file
    candidates = []
    try:
        candidates.append(Path(str(resources.files("polygraphy_ext").joinpath("lib", name))))
    except TypeError:  # pragma: no cover - zipped installs have no file system path
        pass
    candidates.extend(directory / "polygraphy_ext" / "lib" / name for directory in _site_directories())
    for path in candidates:
        if path.is_file():
            return path.resolve()
    return None

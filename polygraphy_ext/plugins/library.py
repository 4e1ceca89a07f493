"""Where the shipped plugin library lives inside the installed package."""

from importlib import resources
from pathlib import Path
from typing import Optional

from polygraphy_ext.plugins.specs import library_spec


def shipped_library_path() -> Optional[Path]:
    """Path of libpolygraphy_ext_plugins.so installed with the package, or None if it was not built."""
    candidate = resources.files("polygraphy_ext").joinpath("lib", library_spec().library_file)
    try:
        path = Path(str(candidate))
    except TypeError:  # pragma: no cover - zipped installs have no file system path
        return None
    return path if path.is_file() else None

"""Where the shipped plugin library lives inside the installed package."""

import sys
from importlib import resources
from pathlib import Path
from typing import Optional

from polygraphy_ext.plugins.specs import library_spec


def shipped_library_path() -> Optional[Path]:
    """Path of libpolygraphy_ext_plugins.so installed with the package, or None if it was not built.

    A regular install has it in the package directory. An editable install keeps the Python sources in the
    checkout while the build installs the library into site-packages/polygraphy_ext/lib, so the sys.path
    entries are searched as well.
    """
    name = library_spec().library_file
    candidates = []
    try:
        candidates.append(Path(str(resources.files("polygraphy_ext").joinpath("lib", name))))
    except TypeError:  # pragma: no cover - zipped installs have no file system path
        pass
    candidates.extend(Path(entry) / "polygraphy_ext" / "lib" / name for entry in sys.path if entry)
    for path in candidates:
        if path.is_file():
            return path.resolve()
    return None

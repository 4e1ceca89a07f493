"""PEP 562 lazy re-exports, so that importing a light submodule of a package does not import its heavy siblings."""

import importlib


def lazy_getattr(package: str, exports: dict):
    """A module ``__getattr__`` resolving ``name`` from ``exports[name]`` (a module path, relative to
    ``package`` when it starts with '.') on first access."""

    def __getattr__(name):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name], package), name)

    return __getattr__

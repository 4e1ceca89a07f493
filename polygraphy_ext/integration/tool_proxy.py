"""Lazy proxies that stand in for polygraphy-ext's tools in Polygraphy's registry and surgeon (``patches/tools.py``).

Our tool modules are NOT imported here: they import ``polygraphy.tools`` themselves, which may
be the very import that is still in progress (``import polygraphy_ext.tools.x`` -> ``polygraphy.tools`` ->
registry -> hook), and importing them now would fail half-way and make Polygraphy show a ``MissingTool``.
A proxy carries only the name and defers the import to the moment the parser is built.
"""

import importlib
import importlib.util
import os
from typing import List, Tuple

PROXY_MARKER = "_polygraphy_ext_proxy"


def module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def available(entries: List[Tuple[str, str, str]]):
    return [entry for entry in entries if module_exists(entry[1])]


def _make_proxy_class():
    # Built on first use: polygraphy.tools.base is importable by now (the registry itself imported it).
    from polygraphy.logger import G_LOGGER
    from polygraphy.tools.base import Tool

    class UnloadableTool(Tool):
        """Takes the place of a tool whose module failed to import: -h says so, running it fails cleanly."""

        def __init__(self, name, err):
            super().__init__(name)
            self.err = err
            self.__doc__ = f"[!] This polygraphy-ext tool could not be loaded: {err}"

        def run_impl(self, args):
            G_LOGGER.critical(f"polygraphy-ext tool '{self.name}' could not be loaded: {self.err}")

    class LazyToolProxy(Tool):
        """Stands in for a polygraphy-ext tool until its parser is needed."""

        def __init__(self, name, module, class_name):
            super().__init__(name)
            self._module = module
            self._class_name = class_name
            self.__doc__ = f"polygraphy-ext tool '{name}' (loaded on use)"
            setattr(self, PROXY_MARKER, True)

        def load(self):
            """Import and instantiate the real tool; raises on failure."""
            tool_class = getattr(importlib.import_module(self._module), self._class_name)
            return tool_class()

        def setup_parser(self, subparsers=None):
            try:
                tool = self.load()
            except Exception as err:
                tool = UnloadableTool(self.name, err=f"{type(err).__name__}: {err}")
            return tool.setup_parser(subparsers)

    return LazyToolProxy


_proxy_class = None


def make_proxy(name, module, class_name):
    global _proxy_class
    if _proxy_class is None:
        _proxy_class = _make_proxy_class()
    return _proxy_class(name, module, class_name)


def entries_from_env(env_var):
    """Test-only tools, ``name=module:Class`` separated by commas, to prove the mechanism in tests."""
    entries = []
    for item in filter(None, os.environ.get(env_var, "").split(",")):
        name, _, target = item.partition("=")
        module, _, class_name = target.partition(":")
        if name and module and class_name:
            entries.append((name.strip(), module.strip(), class_name.strip()))
    return entries

"""Adds polygraphy-ext's tools to Polygraphy's registry and surgeon, as lazy proxies.

Called by the start-up hook right after ``polygraphy.tools.registry`` or ``polygraphy.tools.surgeon.surgeon``
has executed. Our tool modules are NOT imported here: they import ``polygraphy.tools`` themselves, which may
be the very import that is still in progress (``import polygraphy_ext.tools.x`` -> ``polygraphy.tools`` ->
registry -> hook), and importing them now would fail half-way and make Polygraphy show a ``MissingTool``.
A proxy carries only the name and defers the import to the moment the parser is built.
"""

import importlib
import importlib.util
import os
from typing import List, Tuple

from polygraphy_ext import _registry

_PROXY_MARKER = "_polygraphy_ext_proxy"


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _available(entries: List[Tuple[str, str, str]]):
    return [entry for entry in entries if _module_exists(entry[1])]


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
            setattr(self, _PROXY_MARKER, True)

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


def _proxy(name, module, class_name):
    global _proxy_class
    if _proxy_class is None:
        _proxy_class = _make_proxy_class()
    return _proxy_class(name, module, class_name)


def extend_tool_registry(registry_module):
    """Append proxies for our top-level tools to ``TOOL_REGISTRY`` (idempotent)."""
    registry = registry_module.TOOL_REGISTRY
    present = {getattr(tool, "name", None) for tool in registry}
    for name, module, class_name in _available(_registry.TOOLS + _test_entries("POLYGRAPHY_EXT_TEST_TOOLS")):
        if name not in present:
            registry.append(_proxy(name, module, class_name))


def extend_surgeon(surgeon_module):
    """Wrap ``Surgeon.get_subtools_impl`` so that it also returns our subtools (idempotent)."""
    surgeon_class = surgeon_module.Surgeon
    original = surgeon_class.get_subtools_impl
    if getattr(original, _PROXY_MARKER, False):
        return

    def get_subtools_impl(self):
        title, subtools = original(self)
        present = {getattr(tool, "name", None) for tool in subtools}
        entries = _available(_registry.SURGEON_SUBTOOLS + _test_entries("POLYGRAPHY_EXT_TEST_SURGEON_SUBTOOLS"))
        extra = [_proxy(name, module, cls) for name, module, cls in entries if name not in present]
        return title, list(subtools) + extra

    setattr(get_subtools_impl, _PROXY_MARKER, True)
    surgeon_class.get_subtools_impl = get_subtools_impl


def _test_entries(env_var):
    """Test-only tools, ``name=module:Class`` separated by commas, to prove the mechanism in tests."""
    entries = []
    for item in filter(None, os.environ.get(env_var, "").split(",")):
        name, _, target = item.partition("=")
        module, _, class_name = target.partition(":")
        if name and module and class_name:
            entries.append((name.strip(), module.strip(), class_name.strip()))
    return entries

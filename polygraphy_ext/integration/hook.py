"""Start-up hook: extends Polygraphy's command line once Polygraphy itself is imported.

Installed as the top-level module ``_polygraphy_ext_hook`` (a plain file in site-packages) and imported by the
``__polygraphy_ext_hook.pth`` line at every interpreter start, so it must be cheap, must never raise, and must
import neither Polygraphy nor the polygraphy_ext package (nor anything else: ``os`` and ``sys`` are loaded before
any ``.pth`` line runs). Code that needs it imports ``_polygraphy_ext_hook`` (falling back to
``polygraphy_ext.integration.hook`` where the build did not install the top-level copy). It only puts a finder
on ``sys.meta_path``; when one of the watched Polygraphy modules is imported later, the finder lets the normal
loader execute it and then calls ``polygraphy_ext.integration.table.apply_for`` with it, which applies the
rows of the integration table that belong to that module.

Set ``POLYGRAPHY_EXT_DISABLE_HOOK=1`` to skip it.
"""

import os
import sys

DISABLE_ENV = "POLYGRAPHY_EXT_DISABLE_HOOK"

# Polygraphy module -> "module:function" called with that module right after it has executed. The keys are
# integration.table.hooked_modules() (a test keeps them equal; this file cannot import the table at start).
_APPLY = "polygraphy_ext.integration.table:apply_for"
IMPORT_HOOKS = {
    "polygraphy.backend.onnxrt.loader": _APPLY,
    "polygraphy.tools.args.backend.trt.config": _APPLY,
    "polygraphy.tools.args.backend.trt.loader": _APPLY,
    "polygraphy.tools.registry": _APPLY,
    "polygraphy.tools.surgeon.surgeon": _APPLY,
}


def _run_patch(target, module):
    try:
        mod_name, func_name = target.split(":")
        __import__(mod_name)
        getattr(sys.modules[mod_name], func_name)(module)
    except Exception as err:  # a broken extension must never break Polygraphy itself
        if os.environ.get("POLYGRAPHY_EXT_DEBUG_HOOK"):
            sys.stderr.write(f"[polygraphy-ext] hook {target} failed: {err!r}\n")


class _PatchingLoader:
    """Wraps the real loader of a watched module: execute it as usual, then patch it."""

    def __init__(self, loader, target):
        self._loader = loader
        self._target = target

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _run_patch(self._target, module)

    def __getattr__(self, name):  # get_source, is_package, ... for tracebacks and pkgutil
        return getattr(self._loader, name)


class PolygraphyExtFinder:
    """A meta-path finder that only ever answers for the modules in IMPORT_HOOKS."""

    _polygraphy_ext_finder = True  # recognised by marker: this file may be loaded under two module names

    def find_spec(self, fullname, path=None, target=None):
        patch = IMPORT_HOOKS.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if getattr(finder, "_polygraphy_ext_finder", False):
                continue
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            try:
                spec = find_spec(fullname, path, target)
            except Exception:
                continue
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader, patch)
                return spec
        return None

    def invalidate_caches(self):
        pass


def install():
    """Put the finder on sys.meta_path once; patch watched modules that are already imported."""
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        return
    if not any(getattr(finder, "_polygraphy_ext_finder", False) for finder in sys.meta_path):
        sys.meta_path.insert(0, PolygraphyExtFinder())
    for name, patch in list(IMPORT_HOOKS.items()):
        module = sys.modules.get(name)
        if module is not None:
            _run_patch(patch, module)


install()

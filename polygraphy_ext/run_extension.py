"""The ``polygraphy.run.plugins`` entry point: argument groups polygraphy-ext adds to ``polygraphy run``.

Polygraphy loads this for every ``polygraphy run``. It also installs the start-up hook, so that our
Polygraphy patches apply even where ``.pth`` files are not processed (e.g. ``pip install --target``).
"""


def install_hook():
    try:
        import _polygraphy_ext_hook as hook
    except ImportError:  # installed without the build step that places the top-level module
        from polygraphy_ext.integration import hook
    hook.install()
    return hook


def get_arg_groups():
    import importlib

    from polygraphy_ext.integration.registry import RUN_ARG_GROUPS

    install_hook()
    return [getattr(importlib.import_module(module), name)() for module, name in RUN_ARG_GROUPS]

"""The ``polygraphy.run.plugins`` entry point: argument groups polygraphy-ext adds to ``polygraphy run``.

Polygraphy loads this for every ``polygraphy run``. It also installs the start-up hook, so that our
Polygraphy patches apply even where ``.pth`` files are not processed (e.g. ``pip install --target``).
"""


def get_arg_groups():
    from polygraphy_ext import _hook

    _hook.install()
    return []

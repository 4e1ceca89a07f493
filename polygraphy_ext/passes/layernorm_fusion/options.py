"""Which fuse-ln options cannot go together: one rule, asked by the pass, its loader and every CLI spelling.

Kept apart from ``fuse.py`` so that argument parsing can ask without importing the pass (numpy,
onnx-graphsurgeon).
"""


def option_conflict(target, skip, target_flag="--target", skip_flag="--skip"):
    """The one-line reason why these options cannot go together, or None; flags name them as the caller spells
    them (the surgeon subtool, ``polygraphy run --fuse-ln-*``, the loader and the pass all ask here)."""
    if skip and (target or "native") != "plugin":
        return f"{skip_flag} needs {target_flag} plugin: ONNX has no SkipLayerNormalization operator"
    return None

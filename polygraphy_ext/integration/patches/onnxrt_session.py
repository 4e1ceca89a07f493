"""``SessionFromOnnx.__init__`` (wrapped) and its private ``_model_bytes_or_path`` (replaced): ``polygraphy run
--onnxrt`` runs polygraphy-ext's plugin nodes through their CPU reference (``plugins/ort_reference.py``)."""

_PATCHED = "_polygraphy_ext_patched"


def apply(module):
    session_class = module.SessionFromOnnx
    original_init = session_class.__init__
    if getattr(original_init, _PATCHED, False):
        return

    def __init__(self, model_bytes, *args, **kwargs):
        from polygraphy_ext.plugins.ort_reference import ReferenceModelLoader

        original_init(self, model_bytes, *args, **kwargs)
        self._model_bytes_or_path = ReferenceModelLoader(self._model_bytes_or_path)

    setattr(__init__, _PATCHED, True)
    __init__.__doc__ = original_init.__doc__
    session_class.__init__ = __init__

"""Polygraphy's shape inference, without side effects in the user's working directory.

onnxruntime's symbolic shape inference (which Polygraphy's ``InferShapes`` tries first) saves
``sym_shape_infer_temp.onnx`` plus a UUID-named external-data file into the current directory whenever it
cannot infer every shape -- common for exported graphs -- and leaves them there. Running it from a private
scratch directory keeps a user's directory exactly as it was.
"""

import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def scratch_working_directory():
    previous = os.getcwd()
    scratch = tempfile.mkdtemp(prefix="pgx-shape-inference-")
    os.chdir(scratch)
    try:
        yield scratch
    finally:
        os.chdir(previous)
        shutil.rmtree(scratch, ignore_errors=True)


def infer_shapes(model, *, external_data_dir=None, allow_onnxruntime=None, error_ok=True):
    """``polygraphy.backend.onnx.InferShapes(model, ...)()`` run from a scratch directory.

    ``model`` is a ModelProto or a path; relative paths (model, external data) are resolved against the
    caller's working directory before it changes.
    """
    from polygraphy.backend.onnx import InferShapes

    if isinstance(model, (str, os.PathLike)):
        model = os.path.abspath(model)
    if external_data_dir is not None:
        external_data_dir = os.path.abspath(external_data_dir)
    with scratch_working_directory():
        return InferShapes(
            model, error_ok=error_ok, external_data_dir=external_data_dir, allow_onnxruntime=allow_onnxruntime
        )()

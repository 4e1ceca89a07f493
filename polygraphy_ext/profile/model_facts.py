"""``rank-profile --advise --model``: what fuse-ln and align-dims would do on the engine's ONNX model.

Both passes run on private copies of the graph (nothing is written); their reports give the numbers a finding
quotes ("fuse-ln would fuse 24 of 24 chains", "align-dims would pad 12 dims: ... 3071->3072"). Imported only when
``--model`` is given: it needs onnx and onnx-graphsurgeon, which the rest of rank-profile does not.
"""

import os

from polygraphy_ext.profile.advise import TENSOR_CORE_MULTIPLES, ModelFacts
from polygraphy_ext.profile.errors import ProfileError


def _load(path: str):
    import onnx

    if not os.path.isfile(path):
        raise ProfileError(f"{path}: no such file" if not os.path.isdir(path) else f"{path}: is a directory")
    try:
        return onnx.load(path)
    except Exception as err:  # onnx raises DecodeError, ValueError, OSError... for a file that is not a model
        raise ProfileError(f"{path}: cannot read as an ONNX model ({_first_line(err)})") from None


def model_facts(path: str, precision: str = "FP16") -> ModelFacts:
    """Run the matchers of fuse-ln and the planner of align-dims on ``path``; ``precision`` picks the multiple."""
    import onnx_graphsurgeon as gs

    from polygraphy_ext.passes import align_dims, fuse_layernorm
    from polygraphy_ext.shape_inference import infer_shapes

    model = _load(path)
    if not model.graph.node:
        raise ProfileError(f"{path}: the model has no nodes")
    facts = ModelFacts(source=path)
    try:
        model = infer_shapes(model)
    except Exception as err:  # shape inference is a help for both passes, not a requirement
        facts.notes.append(f"shape inference failed ({_first_line(err)})")
    # Each pass rewrites the graph it is given: each gets its own import of the model.
    try:
        # The plugin target fuses at any opset, so its count is every chain that can be fused at all.
        report = fuse_layernorm(gs.import_onnx(model), target="plugin", rms=True)
        facts.norm_candidates = len(report.candidates)
        facts.norm_chains = len(report.fused)
        facts.norm_already_native = getattr(report, "already_native", 0) or 0
    except Exception as err:  # evidence for a finding, never a reason to lose the report
        facts.notes.append(f"fuse-ln could not run on the model: {_first_line(err)}")
    multiple = TENSOR_CORE_MULTIPLES.get(precision, 8)
    try:
        aligned = align_dims(gs.import_onnx(model), multiple=multiple, concrete_dims=False)
        facts.align_multiple = multiple
        facts.pad_dims = [(dim.producer, dim.op, dim.old_size, dim.new_size) for dim in aligned.aligned]
    except Exception as err:
        facts.notes.append(f"align-dims could not run on the model: {_first_line(err)}")
    return facts


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__

"""``FuseLayerNorm``, the Polygraphy-style lazy loader: inputs it accepts, what it leaves alone, how it fails."""

import pytest
from onnx import helper
from polygraphy.backend.onnx import BytesFromOnnx
from polygraphy.exception import PolygraphyException

from fuse_ln_chains import build, variant
from fuse_ln_checks import assert_equivalent, op_types
from polygraphy_ext.passes.layernorm_fusion.loader import FuseLayerNorm, fuse_layer_norm


def _model():
    model = build(variant())
    model.doc_string = "exported by hand"
    helper.set_model_props(model, {"origin": "test"})
    return model


@pytest.mark.parametrize("wrap", ["proto", "bytes", "loader"])
def test_fuses_any_accepted_input_and_leaves_the_caller_model_alone(wrap):
    model = _model()
    before = model.SerializeToString()
    source = {"proto": model, "bytes": before, "loader": BytesFromOnnx(model)}[wrap]
    loader = FuseLayerNorm(source)
    fused = loader()
    assert op_types(fused).count("LayerNormalization") == 1
    assert len(loader.report.fused) == 1
    assert model.SerializeToString() == before
    assert fused.doc_string == "exported by hand" and {p.key: p.value for p in fused.metadata_props} == {"origin": "test"}
    assert_equivalent(model, fused)


def test_functional_form_and_options_reach_the_pass():
    model = build(variant(form="rms", beta=False, opset=11))
    fused = fuse_layer_norm(model, target="plugin", rms=True)
    assert op_types(fused).count("RMSNorm") == 1


def test_infer_shapes_reaches_the_pass():
    model = build(variant(leading_cast=True))
    del model.graph.value_info[:]  # as raw exports leave it: the Cast output feeding the chain has no shape
    loader = FuseLayerNorm(model)
    loader()
    # Without shape inference the dims are proven through the Cast from the shaped graph input...
    assert loader.report.fused and "Cast cast_x" in loader.report.candidates[0].shape_proof
    inferred = FuseLayerNorm(model, infer_shapes=True)
    inferred()
    # ...with it, shape inference gives them.
    assert inferred.report.candidates[0].shape_proof == "static shape"


def test_unsafe_request_is_a_polygraphy_error_not_a_traceback():
    with pytest.raises(PolygraphyException, match="--skip needs --target plugin"):
        fuse_layer_norm(build(variant(residual=True)), skip=True)

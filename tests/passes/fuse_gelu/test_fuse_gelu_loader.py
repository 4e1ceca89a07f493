"""``FuseGelu``, the lazy loader: inputs it accepts, what it leaves alone, constness, how it fails."""

import os
import subprocess
import sys

import onnx
import pytest
from gelu_chains import build, cast_wrapped, erf_torchscript, tanh_gelu_new, with_bias
from gelu_checks import assert_equivalent, op_types
from onnx import helper
from polygraphy.backend.onnx import BytesFromOnnx
from polygraphy.exception import PolygraphyException

from polygraphy_ext.passes.gelu_fusion.loader import FuseGelu, fuse_gelu


@pytest.mark.parametrize("wrap", ["proto", "bytes", "loader"])
def test_fuses_any_accepted_input_and_leaves_the_caller_model_alone(wrap):
    model = build(erf_torchscript)
    model.doc_string = "exported by hand"
    model.producer_name = "pytorch"
    helper.set_model_props(model, {"origin": "test"})
    before = model.SerializeToString()
    source = {"proto": model, "bytes": before, "loader": BytesFromOnnx(model)}[wrap]
    loader = FuseGelu(source)
    fused = loader()
    assert op_types(fused) == ["Gelu"] and len(loader.report.fused) == 1
    assert model.SerializeToString() == before
    assert fused.doc_string == "exported by hand" and fused.producer_name == "pytorch"
    assert {p.key: p.value for p in fused.metadata_props} == {"origin": "test"}
    assert_equivalent(model, fused)


def test_functional_form_and_options_reach_the_pass():
    model, _ = with_bias(tanh_gelu_new, (16,))
    assert op_types(fuse_gelu(model, target="plugin")) == ["BiasGelu"]
    assert op_types(fuse_gelu(model, target="plugin", bias=False)) == ["Add", "BiasGelu"]


def test_infer_shapes_lets_unshaped_exports_fold_their_bias():
    model, _ = with_bias(erf_torchscript, (16,))
    del model.graph.value_info[:]
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "H"  # a dynamic width: nothing to check against
    assert op_types(fuse_gelu(model, target="plugin")) == ["Add", "BiasGelu"]
    fp16 = cast_wrapped(tanh_gelu_new)
    assert op_types(fuse_gelu(fp16, target="plugin", infer_shapes=True)) == ["BiasGelu"]


def test_unchanged_model_is_returned_as_is():
    model = build(erf_torchscript)
    model.graph.node[1].op_type = "Tanh"  # erf(x/sqrt2) -> tanh(x/sqrt2): not a GELU
    loader = FuseGelu(model)
    assert loader() is model and not loader.report.fused


def test_unsafe_opset_raise_is_a_polygraphy_error_not_a_traceback():
    from test_fuse_gelu_rejections import _model_with_spatial_batchnorm

    model = _model_with_spatial_batchnorm()
    with pytest.raises(PolygraphyException, match="needs opset 20"):
        fuse_gelu(model)


def test_loader_is_a_constant_functor_under_polygraphy_correctness_checks(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(build(erf_torchscript), path)
    code = (
        "from polygraphy.backend.onnx import OnnxFromPath\n"
        "from polygraphy_ext.passes.gelu_fusion.loader import FuseGelu\n"
        f"loader = FuseGelu(OnnxFromPath({str(path)!r}), target='plugin', infer_shapes=True)\n"
        "for _ in range(2):\n"
        "    model = loader()\n"
        "    assert [n.op_type for n in model.graph.node] == ['BiasGelu'], model\n"
        "    assert len(loader.report.fused) == 1\n"
        "print('ok')\n"
    )
    env = dict(os.environ, POLYGRAPHY_INTERNAL_CORRECTNESS_CHECKS="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stdout + proc.stderr
    assert "mutated" not in proc.stdout + proc.stderr


def test_report_is_none_before_the_first_call():
    assert FuseGelu(build(erf_torchscript)).report is None

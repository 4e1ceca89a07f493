"""Real exporter outputs (torch.onnx.export at opsets 11-16, a tf2onnx-style Keras graph): exact counts,
equivalence in onnxruntime, and TensorRT-RTX builds of the fused models (SM89, on CPU)."""

from pathlib import Path

import onnx
import onnx_graphsurgeon as gs
import pytest
from polygraphy.backend.onnx import InferShapes

from fuse_ln_checks import op_types
from make_fixtures import EXPECTED, keras_tf2onnx_fixture
from polygraphy_ext.numerics import compare_models
from polygraphy_ext.passes import fuse_layernorm
from polygraphy_ext.plugins.ort_reference import lower_plugin_nodes

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _load(name):
    # What the CLI does by default: Polygraphy shape inference (exports leave Reshape outputs unshaped).
    return InferShapes(onnx.load(str(FIXTURES / name)))()


def _fuse(model, **options):
    graph = gs.import_onnx(model)
    report = fuse_layernorm(graph, **options)
    return gs.export_onnx(graph, do_type_check=False), report


def _tolerance(model):
    fp16 = any(i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16 for i in model.graph.output)
    return 2e-2 if fp16 else 1e-4


def test_fixtures_are_small_and_really_decomposed():
    for name in EXPECTED:
        path = FIXTURES / name
        assert path.stat().st_size < 200_000
        ops = op_types(onnx.load(str(path)))
        assert "LayerNormalization" not in ops and "ReduceMean" in ops and "Sqrt" in ops


def test_the_generator_reproduces_the_keras_fixture(tmp_path):
    keras_tf2onnx_fixture(tmp_path)
    name = "keras_layernorm_tf2onnx_opset13.onnx"
    assert (tmp_path / name).read_bytes() == (FIXTURES / name).read_bytes()


def test_the_generator_reproduces_the_torch_fixtures(tmp_path):
    torch = pytest.importorskip("torch", reason="regenerating the torch.onnx.export fixtures needs torch")
    if torch.__version__.split("+")[0] != "2.13.0":
        pytest.skip(f"the fixtures were exported with torch 2.13.0, this is {torch.__version__}")
    from make_fixtures import _torch_fixtures

    _torch_fixtures(tmp_path)
    for name in sorted(set(EXPECTED) - {"keras_layernorm_tf2onnx_opset13.onnx"}):
        assert (tmp_path / name).read_bytes() == (FIXTURES / name).read_bytes(), name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_plugin_target_fuses_the_exact_count(name):
    layernorms, rmsnorms = EXPECTED[name]
    model = _load(name)
    fused, report = _fuse(model, target="plugin", rms=True)
    assert len(report.fused) == len(report.candidates) == layernorms + rmsnorms, report.summary()
    ops = op_types(fused)
    assert (ops.count("LayerNorm"), ops.count("RMSNorm")) == (layernorms, rmsnorms)
    assert "ReduceMean" not in ops and "Sqrt" not in ops
    onnx.checker.check_model(fused, full_check=True)
    lowered, _ = lower_plugin_nodes(fused)
    result = compare_models(model, lowered, atol=_tolerance(model), rtol=_tolerance(model))
    assert result.ok, result.summary()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_native_target_fuses_the_exact_count(name):
    layernorms, rmsnorms = EXPECTED[name]
    model = _load(name)
    fused, report = _fuse(model, rms=True)
    ops = op_types(fused)
    assert (ops.count("LayerNormalization"), ops.count("RMSNormalization")) == (layernorms, rmsnorms)
    assert report.opset_after == (23 if rmsnorms else 17)
    onnx.checker.check_model(fused, full_check=True)
    result = compare_models(model, fused, atol=_tolerance(model), rtol=_tolerance(model))
    assert result.ok, result.summary()


def test_bert_skip_layernorm():
    model = _load("bert_block_opset14.onnx")
    fused, report = _fuse(model, target="plugin", skip=True)
    ops = op_types(fused)
    # The embeddings LayerNorm has no residual in front; both encoder LayerNorms absorb residual + bias Adds.
    assert (ops.count("SkipLayerNorm"), ops.count("LayerNorm")) == (2, 1)
    lowered, _ = lower_plugin_nodes(fused)
    result = compare_models(model, lowered, atol=1e-4, rtol=1e-4)
    assert result.ok, result.summary()


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    ["bert_block_opset14.onnx", "keras_layernorm_tf2onnx_opset13.onnx", "swin_block_opset15.onnx", "t5_rmsnorm_opset16.onnx"],
)
def test_native_output_builds_with_tensorrt_rtx(name, build_engine):
    fused, report = _fuse(_load(name), rms=True)
    assert report.fused
    assert len(build_engine(fused.SerializeToString())) > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bert_block_opset11.onnx", "t5_rmsnorm_opset16.onnx"])
def test_plugin_output_builds_with_the_plugin_library(name, build_engine, plugin_library):
    fused, report = _fuse(_load(name), target="plugin", skip=True, rms=True)
    assert report.fused
    assert len(build_engine(fused.SerializeToString(), plugin_libraries=[plugin_library])) > 0

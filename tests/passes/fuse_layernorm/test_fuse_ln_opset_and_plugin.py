"""Opset-raise safety for --target native, and plugin/SkipLayerNorm nodes defined only by specs.json."""

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest
from onnx import helper

from fuse_ln_chains import build, variant
from fuse_ln_checks import assert_equivalent, assert_plugin_equivalent, op_types, run_pass
from polygraphy_ext.passes import fuse_layernorm
from polygraphy_ext.passes.layernorm_fusion import FusionError
from polygraphy_ext.plugins.ort_reference import lower_plugin_nodes
from polygraphy_ext.plugins.specs import plugin_spec


def _with_extra_node(model, node, inits=()):
    """Append ``node`` consuming y and producing the new graph output z."""
    model.graph.node.append(node)
    model.graph.initializer.extend(inits)
    model.graph.output.append(helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [2, 3, 16]))
    return model


def test_raise_to_17_when_every_other_node_is_unchanged():
    model = _with_extra_node(build(variant(opset=13)), helper.make_node("Relu", ["y"], ["z"], name="relu"))
    fused, report = run_pass(model)
    assert (report.opset_before, report.opset_after) == (13, 17)
    assert fused.opset_import[0].version == 17 and fused.ir_version >= 8
    assert_equivalent(model, fused)


def test_unsafe_raise_stops_naming_the_blocking_nodes():
    model = build(variant(opset=11))
    # Before opset 12 MaxPool auto_pad=SAME_UPPER meant "output as large as the input": with stride 2 it has no new form.
    pool = helper.make_node("MaxPool", ["y"], ["z"], name="the_pool", kernel_shape=[3], strides=[2], auto_pad="SAME_UPPER")
    model = _with_extra_node(model, pool)
    model.graph.output[1].type.tensor_type.shape.dim[2].dim_value = 8
    graph = gs.import_onnx(model)
    with pytest.raises(FusionError) as err:
        fuse_layernorm(graph)
    message = str(err.value)
    assert "the_pool" in message and "--target plugin" in message and "\n" not in message
    assert gs.export_onnx(graph, do_type_check=False).SerializeToString() == gs.export_onnx(
        gs.import_onnx(model), do_type_check=False
    ).SerializeToString()


def test_no_raise_opset_reports_instead():
    model = build(variant(opset=13))
    fused, report = run_pass(model, raise_opset=False)
    assert not report.fused and "opset raising is off" in report.candidates[0].reason
    assert fused.opset_import[0].version == 13


def test_plugin_target_works_at_any_opset_with_fields_from_specs():
    model = build(variant(opset=11))
    fused, report = run_pass(model, target="plugin")
    spec = plugin_spec("LayerNorm")
    node = next(n for n in fused.graph.node if n.op_type == spec.name)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert node.domain == spec.onnx_domain
    assert attrs["plugin_version"].decode() == spec.version and attrs["plugin_namespace"].decode() == spec.namespace
    assert set(attrs) == {"plugin_version", "plugin_namespace", *spec.fields}
    assert attrs["axis"] == -1 and attrs["epsilon"] == np.float32(variant().eps)
    assert fused.opset_import[0].version == 11 and report.opset_after == 11
    assert lower_plugin_nodes(fused)[1] == {"LayerNorm": 1}
    assert_plugin_equivalent(build, variant(opset=11))


def test_rms_plugin():
    model = build(variant(form="rms", beta=False, inv="reciprocal", opset=13))
    fused, report = run_pass(model, target="plugin", rms=True)
    assert op_types(fused).count("RMSNorm") == 1
    node = next(n for n in fused.graph.node if n.op_type == "RMSNorm")
    assert {a.name for a in node.attribute} == {"plugin_version", "plugin_namespace", *plugin_spec("RMSNorm").fields}


def test_skip_needs_the_plugin_target():
    with pytest.raises(FusionError, match="--skip needs --target plugin"):
        fuse_layernorm(gs.import_onnx(build(variant(residual=True))), skip=True)


@pytest.mark.parametrize(
    "spec, has_bias, output_sum",
    [
        (variant(residual=True), 0, 0),
        (variant(residual=True, residual_bias=True), 1, 0),
        (variant(residual=True, residual_reused=True), 0, 1),
        (variant(residual=True, residual_bias=True, residual_reused=True, beta=False), 1, 1),
    ],
    ids=["residual", "residual+bias", "sum-reused", "bias-no-beta-sum-reused"],
)
def test_skip_layernorm(spec, has_bias, output_sum):
    model = build(spec)
    fused, report = run_pass(model, target="plugin", skip=True)
    node = next(n for n in fused.graph.node if n.op_type == "SkipLayerNorm")
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert (attrs["has_bias"], attrs["output_sum"]) == (has_bias, output_sum)
    assert set(attrs) == {"plugin_version", "plugin_namespace", *plugin_spec("SkipLayerNorm").fields}
    assert "Add" not in op_types(fused)  # residual and bias Adds are inside the plugin
    assert len(node.output) == 1 + output_sum
    assert_plugin_equivalent(build, spec, skip=True)


def test_skip_with_broadcasting_residual_falls_back_to_layernorm():
    model = build(variant(residual=True))
    model.graph.input[1].type.tensor_type.shape.dim[0].dim_value = 1  # r: [1, 3, 16] broadcasts over a
    model = onnx.shape_inference.infer_shapes(model)
    fused, report = run_pass(model, target="plugin", skip=True)
    assert op_types(fused).count("LayerNorm") == 1 and "Add" in op_types(fused)
    # The plugin's kernel reads input and skip row for row: the report says so instead of folding a broadcast.
    assert any("[1, 3, 16]" in note and "needs equal shapes" in note for note in report.fused[0].notes)

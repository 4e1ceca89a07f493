"""Every GELU spelling of issue 15 fuses, in both operand orders, into the right Gelu, and computes the same."""

import numpy as np
import pytest
from gelu_chains import ERF_SPELLINGS, TANH_SPELLINGS, build, cast_wrapped, erf_torchscript, tanh_gelu_new
from gelu_checks import assert_equivalent, op_types, run_pass
from onnx import helper

from polygraphy_ext.plugins.specs import plugin_spec


def _gelu_attrs(model):
    nodes = [n for n in model.graph.node if n.op_type == "Gelu"]
    assert len(nodes) == 1, op_types(model)
    return {a.name: helper.get_attribute_value(a) for a in nodes[0].attribute}


@pytest.mark.parametrize("swap", [False, True], ids=["order-a", "order-b"])
@pytest.mark.parametrize("spelling", ERF_SPELLINGS + TANH_SPELLINGS, ids=lambda f: f.__name__)
def test_spelling_fuses_to_native_gelu(spelling, swap):
    model = build(spelling, swap=swap)
    fused, report = run_pass(model)
    assert len(report.fused) == 1, report.summary()
    assert op_types(fused) == ["Gelu"]
    approximate = "tanh" if spelling in TANH_SPELLINGS else "none"
    assert _gelu_attrs(fused)["approximate"].decode() == approximate
    assert report.opset_after == 20 and fused.opset_import[0].version == 20
    # The tanh spellings are compared with the original tanh chain: an erf Gelu would be off by up to 2e-4.
    assert_equivalent(model, fused)


@pytest.mark.parametrize("swap", [False, True], ids=["order-a", "order-b"])
@pytest.mark.parametrize("spelling", [erf_torchscript, tanh_gelu_new], ids=lambda f: f.__name__)
def test_float64_and_float16_chains(spelling, swap):
    for dtype in (np.float64, np.float16):
        model = build(spelling, swap=swap, dtype=dtype)
        fused, report = run_pass(model)
        assert op_types(fused) == ["Gelu"], report.summary()
        if not (dtype == np.float64 and spelling is erf_torchscript):  # onnxruntime has no float64 Erf
            assert_equivalent(model, fused)


@pytest.mark.parametrize("swap", [False, True], ids=["order-a", "order-b"])
@pytest.mark.parametrize("spelling", [erf_torchscript, tanh_megatron := TANH_SPELLINGS[2]], ids=lambda f: f.__name__)
def test_cast_wrapped_fp16(spelling, swap):
    """fp16 in, fp32 erf/tanh, fp16 out: native Gelu stays in fp32 between the Casts; the plugin reads fp16."""
    model = cast_wrapped(spelling, swap=swap)
    fused, report = run_pass(model)
    assert len(report.fused) == 1, report.summary()
    assert op_types(fused) == ["Cast", "Gelu", "Cast"]
    assert_equivalent(model, fused)

    fused, report = run_pass(model, target="plugin")
    assert op_types(fused) == ["BiasGelu"], report.summary()
    assert fused.graph.node[0].input[0] == "x"
    assert_equivalent(model, fused, plugin=True)


@pytest.mark.parametrize("spelling", [erf_torchscript, tanh_gelu_new], ids=lambda f: f.__name__)
def test_plugin_target_fields_from_specs(spelling):
    model = build(spelling, opset=11)
    fused, report = run_pass(model, target="plugin")
    spec = plugin_spec("BiasGelu")
    (node,) = fused.graph.node
    assert (node.op_type, node.domain) == (spec.name, spec.onnx_domain)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert set(attrs) == {"plugin_version", "plugin_namespace", *spec.fields}
    assert attrs["approximate"].decode() == ("tanh" if spelling is tanh_gelu_new else "none")
    assert report.opset_after == 11  # the plugin target never touches the opset
    assert_equivalent(model, fused, plugin=True)


def test_second_run_changes_nothing():
    fused, _ = run_pass(build(erf_torchscript))
    again, report = run_pass(fused)
    assert not report.candidates and op_types(again) == ["Gelu"]


def test_several_gelus_sharing_an_input_and_unsorted_nodes():
    from gelu_chains import Chain

    c = Chain()
    a = erf_torchscript(c, c.x)
    b = tanh_gelu_new(c, c.x)
    y = c.op("Add", a, b)
    c.nodes.reverse()
    model = c.model(y)
    fused, report = run_pass(model)
    assert len(report.fused) == 2 and sorted(op_types(fused)) == ["Add", "Gelu", "Gelu"], report.summary()
    assert_equivalent(model, fused)

"""to_low_precision on small models: what stays FP32 and why, what the output is, and how bad input fails."""

import json

import numpy as np
import onnx
import pytest
from models import (
    CANCELLATION_NODES,
    OVERFLOW_NODES,
    batches_for,
    cancellation_model,
    fp16_model,
    if_model,
    integer_model,
    masked_attention_batches,
    masked_attention_model,
    overflow_layernorm_model,
    padded_batches,
    tiny_epsilon_layernorm_model,
)
from tolerance_view import judge_outputs

from polygraphy_ext.passes.precision import PrecisionError, to_low_precision
from polygraphy_ext.passes.precision.convert import convert
from polygraphy_ext.passes.precision.dtypes import low_type
from polygraphy_ext.passes.precision.emulate import Emulator
from polygraphy_ext.passes.precision.measure import measure, ort_session
from polygraphy_ext.passes.precision.model_index import ModelIndex
from polygraphy_ext.passes.precision.storage_rounding import storage_rounded

LOW = {onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}


def _verdicts(model, converted, batches, atol=1e-2, rtol=1e-2):
    """How ``converted`` does when every 16-bit tensor is stored in 16 bits (as in a TensorRT engine)."""
    return judge_outputs(ort_session(model), ort_session(storage_rounded(converted)), batches, atol, rtol)


def _all_low(model, batches):
    """The blind conversion: every node that can be FP16 is, with this pass's own writer."""
    measured, _ = measure(model, batches)
    index = ModelIndex(model, measured.float_tensors, low_type("fp16"))
    names = {info.name for info in index.nodes if info.low_inputs or info.low_outputs}
    return convert(model, index, names, keep_io_types=True)


def _fp32_names(report):
    return {node.name for node in report.fp32_nodes}


def test_blind_fp16_of_the_overflow_model_is_far_off():
    # The variance is inf in FP16, so every row normalizes to 0: the output is beta's projection alone.
    model = overflow_layernorm_model()
    batches = batches_for(model)
    verdict = _verdicts(model, _all_low(model, batches), batches)
    assert all(not v["ok"] and v["max_abs_err"] > 1.0 for v in verdict), verdict


def test_onnxruntime_alone_hides_the_overflow_that_storage_rounding_shows():
    # Why the pass never judges a converted model by onnxruntime's own FP16 run (docs/to-fp16.md): on CPU it
    # computes consecutive FP16 ops in FP32 and drops the Casts between them, so x*x never overflows there.
    model = overflow_layernorm_model()
    batches = batches_for(model)
    blind = _all_low(model, batches)
    plain = judge_outputs(ort_session(model), ort_session(blind), batches, 1e-2, 1e-2)
    assert all(v["ok"] for v in plain), plain
    assert not any(v["ok"] for v in _verdicts(model, blind, batches))


def test_keeps_exactly_the_overflowing_part_fp32_and_meets_the_tolerance():
    model = overflow_layernorm_model()
    batches = batches_for(model)
    held_out = batches_for(model, n=1, seed=7)
    converted, report = to_low_precision(model, batches)
    assert _fp32_names(report) == OVERFLOW_NODES
    assert {n.reason for n in report.fp32_nodes} == {"overflow"}
    assert len(report.islands) == 1 and set(report.islands[0].nodes) == OVERFLOW_NODES
    assert report.low_gemm_share == 1.0
    for verdict in _verdicts(model, converted, batches + held_out):
        assert verdict["ok"] and verdict["nonfinite"] == 0, verdict
    onnx.checker.check_model(converted, full_check=True)


def test_error_search_keeps_the_cancelling_nodes_fp32_and_nothing_else():
    model = cancellation_model()
    batches = batches_for(model)
    blind = _verdicts(model, _all_low(model, batches), batches)
    assert not all(v["ok"] for v in blind), "the blind conversion must miss the tolerance for the test to mean anything"
    converted, report = to_low_precision(model, batches)
    assert _fp32_names(report) == CANCELLATION_NODES
    assert {n.reason for n in report.fp32_nodes} == {"error"}
    assert all(v["ok"] for v in _verdicts(model, converted, batches))


def test_attention_mask_of_float32_min_stays_fp32_without_nan():
    model = masked_attention_model()
    batches = masked_attention_batches()
    converted, report = to_low_precision(model, batches)
    reasons = {n.name: n.reason for n in report.fp32_nodes}
    assert reasons["masked"] == "overflow" and reasons["softmax"] == "overflow"
    assert reasons["mask_bias"] == "semantics"
    assert {"q", "k", "v", "scores", "context"} <= set(report.low_nodes)
    for verdict in _verdicts(model, converted, batches + masked_attention_batches(n=1, seed=3)):
        assert verdict["ok"] and verdict["nonfinite"] == 0, verdict


def test_an_epsilon_that_is_zero_in_fp16_keeps_its_add_fp32_and_no_nan():
    model = tiny_epsilon_layernorm_model()
    batches = padded_batches()
    blind = _verdicts(model, _all_low(model, batches), batches)
    assert all(v["nonfinite"] > 0 for v in blind), "0 / sqrt(0 + 0) on the padding row must be NaN when blind"
    converted, report = to_low_precision(model, batches)
    reasons = {n.name: n.reason for n in report.fp32_nodes}
    assert reasons["add_eps"] == "underflow"
    assert "proj" in report.low_nodes
    for verdict in _verdicts(model, converted, batches + padded_batches(n=1, seed=5)):
        assert verdict["ok"] and verdict["nonfinite"] == 0, verdict


def test_output_is_strongly_typed_with_one_cast_per_boundary():
    model = overflow_layernorm_model()
    converted, report = to_low_precision(model, batches_for(model))
    inferred = onnx.shape_inference.infer_shapes(converted, strict_mode=True)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    types.update({v.name: v.type.tensor_type.elem_type for v in list(inferred.graph.input) + list(inferred.graph.output)})
    types.update({i.name: i.data_type for i in inferred.graph.initializer})
    producers = {out: node for node in converted.graph.node for out in node.output}
    for node in converted.graph.node:
        if node.op_type == "Cast":
            source = node.input[0]
            assert types[source] != next(a.i for a in node.attribute if a.name == "to"), f"no-op Cast {node.name}"
            assert producers.get(source) is None or producers[source].op_type != "Cast", f"Cast chain at {node.name}"
    casted = [node.input[0] for node in converted.graph.node if node.op_type == "Cast"]
    assert len(casted) == len(set(casted)), "a tensor is cast twice to the same type"
    # keep_io_types: the interface is what it was.
    assert converted.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert converted.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    for name in ("w1", "w2"):
        assert types[name] == onnx.TensorProto.FLOAT16
    assert report.num_casts == len(casted)


def test_emulation_computes_what_the_converted_model_computes():
    model = masked_attention_model()
    batches = masked_attention_batches()
    measured, _ = measure(model, batches)
    index = ModelIndex(model, measured.float_tensors, low_type("fp16"))
    low = {"q", "k", "v", "kt", "scores", "scale", "context"}
    emulated = Emulator(model, index, sorted(low | {"softmax"}), keep_io_types=True, chunk=64).outputs(batches[0], low)
    converted = convert(model, index, low, keep_io_types=True)
    real = ort_session(storage_rounded(converted)).run(["y"], batches[0])[0]
    np.testing.assert_array_equal(emulated["y"], real)


def test_bf16_output_checks_and_keeps_its_interface():
    model = overflow_layernorm_model()
    converted, report = to_low_precision(model, batches_for(model), dtype="bf16")
    onnx.checker.check_model(converted, full_check=True)
    assert report.dtype == "bf16"
    assert all(v["ok"] for v in _verdicts(model, converted, batches_for(model), 5e-2, 5e-2))
    weights = {i.name: i.data_type for i in converted.graph.initializer}
    assert weights["w1"] == onnx.TensorProto.BFLOAT16
    # bf16 has FP32's range: nothing overflows.
    assert not [n for n in report.fp32_nodes if n.reason == "overflow"]


def test_control_flow_stays_fp32_and_reads_outer_tensors_in_fp32():
    model = if_model()
    batches = [{"x": np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32), "cond": np.array(c)} for c in (True, False)]
    converted, report = to_low_precision(model, batches)
    assert {n.name: n.reason for n in report.fp32_nodes} == {"choose": "semantics"}
    onnx.checker.check_model(converted, full_check=True)
    assert all(v["ok"] for v in _verdicts(model, converted, batches))


def test_keep_fp32_by_name_and_by_op_type():
    model = overflow_layernorm_model()
    batches = batches_for(model)
    _, report = to_low_precision(model, batches, keep_fp32=["head", "Div"])
    reasons = {n.name: n.reason for n in report.fp32_nodes}
    assert reasons["head"] == "request" and reasons["ln_div"] == "request"
    assert 0.0 < report.low_gemm_share < 1.0


def test_report_formats_for_older_tools():
    model = overflow_layernorm_model()
    _, report = to_low_precision(model, batches_for(model))
    data = json.loads(json.dumps(report.to_dict()))
    assert set(data["modelopt_nodes_to_exclude"]) == {name + "$" for name in OVERFLOW_NODES}
    precisions = data["layer_precisions"]
    assert {name for name, p in precisions.items() if p == "float32"} == OVERFLOW_NODES
    assert precisions["proj"] == "float16" and precisions["head"] == "float16"
    assert data["islands"][0]["reasons"] == {"overflow": len(OVERFLOW_NODES)}


def test_input_model_is_not_modified():
    model = overflow_layernorm_model()
    before = model.SerializeToString()
    to_low_precision(model, batches_for(model))
    assert model.SerializeToString() == before


@pytest.mark.parametrize(
    "model, batches, kwargs, message",
    [
        (fp16_model(), [{"x": np.ones((2, 4), np.float16)}], {}, "already in fp16"),
        (integer_model(), [{"a": np.arange(4)}], {}, "integer-only"),
        (overflow_layernorm_model(), batches_for(overflow_layernorm_model()), {"keep_fp32": ["nope"]}, "'nope'"),
        (overflow_layernorm_model(), [{"x": np.ones((2, 5), np.float32)}], {}, "cannot run the FP32 model"),
        (overflow_layernorm_model(), [], {}, "no input batches"),
        (overflow_layernorm_model(), batches_for(overflow_layernorm_model()), {"dtype": "fp8"}, "unknown dtype"),
        # FP16 outputs cannot hold these values to 1e-6: even every node in FP32 misses the tolerance.
        (
            overflow_layernorm_model(),
            batches_for(overflow_layernorm_model()),
            {"keep_io_types": False, "atol": 1e-6, "rtol": 0.0},
            "even with every convertible node in FP32: output 'y'",
        ),
    ],
)
def test_bad_input_is_one_line(model, batches, kwargs, message):
    with pytest.raises(PrecisionError) as info:
        to_low_precision(model, batches, **kwargs)
    assert message in str(info.value)
    assert "\n" not in str(info.value)

"""Assertions shared by the fuse-ln tests: run the pass, prove equivalence in onnxruntime or prove no change."""

from dataclasses import replace

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from polygraphy_ext.numerics import compare_models
from polygraphy_ext.passes import fuse_layernorm

FP32_ATOL = 1e-5
# fp32 rows with std 1e-3 around 3.0 (the chains' eps is 1e-3): two correct implementations that sum the mean
# in a different order differ by ~ulp(3)/sqrt(var + eps) ~ 1e-5 (measured: up to 1.1e-5).
FP32_LOW_VARIANCE_ATOL = 5e-5


def run_pass(model, **options):
    graph = gs.import_onnx(model)
    report = fuse_layernorm(graph, **options)
    fused = gs.export_onnx(graph, do_type_check=False)
    fused.ir_version = model.ir_version if report.opset_after == report.opset_before else fused.ir_version
    return fused, report


def op_types(model):
    return [node.op_type for node in model.graph.node]


def assert_equivalent(original, fused, *, kinds=("random", "low_variance", "large_mean"), atol=FP32_ATOL, checker=True):
    """Original vs fused in onnxruntime within atol (and rtol=atol), per input kind.

    ``checker=False`` for plugin models lowered to onnxruntime's own LayerNormalization below opset 17.
    """
    if checker:
        onnx.checker.check_model(fused, full_check=True)
    for kind in kinds:
        tol = FP32_LOW_VARIANCE_ATOL if (kind == "low_variance" and atol == FP32_ATOL) else atol
        result = compare_models(original, fused, atol=tol, rtol=tol, input_kinds=(kind,))
        assert result.ok, f"{kind}: {result.summary()}"


def assert_fuses_exactly(build, spec, *, count=1, op="LayerNormalization", fp32_kinds=None, **options):
    """The fp32 model fuses into ``count`` ``op`` nodes and matches on fp32 inputs; its float64 twin, where
    rounding cannot hide a semantic change, matches within 1e-6 on all three input kinds (onnxruntime's
    LayerNormalization kernel computes E[x^2]-E[x]^2, which costs ~1e-8 on low-variance rows even in float64)."""
    model = build(spec)
    fused, report = run_pass(model, **options)
    assert len(report.fused) == count, report.summary()
    assert op_types(fused).count(op) == count, op_types(fused)
    kinds = fp32_kinds if fp32_kinds is not None else ("random", "low_variance", "large_mean")
    assert_equivalent(model, fused, kinds=kinds)
    if spec.dtype == np.float32 and not spec.leading_cast and not spec.cast_between_div_mul:
        twin = build(replace(spec, dtype=np.float64, eps_dtype=np.float64 if spec.eps_dtype else None))
        twin_fused, twin_report = run_pass(twin, **options)
        assert len(twin_report.fused) == count, twin_report.summary()
        assert_equivalent(twin, twin_fused, atol=1e-6)
    return fused, report


def assert_not_fused(model, reason, *, runnable=True, **options):
    """No fusion, the expected reason in the report, and the graph exactly as before.

    ``runnable``: the near miss is a model onnxruntime runs (a near miss that is no valid model proves nothing
    about the chains exporters emit); False only for ops onnxruntime does not know.
    """
    if runnable:
        compare_models(model, model, input_kinds=("random",))
    graph = gs.import_onnx(model)
    report = fuse_layernorm(graph, **options)
    assert not report.fused, report.summary()
    reasons = [c.reason for c in report.candidates]
    assert any(reason in (r or "") for r in reasons), f"expected a reason containing {reason!r}, got {reasons}"
    untouched = gs.export_onnx(gs.import_onnx(model), do_type_check=False)
    after = gs.export_onnx(graph, do_type_check=False)
    assert after.SerializeToString() == untouched.SerializeToString()
    return report


def assert_plugin_equivalent(build, spec, **options):
    """Plugin output, lowered to onnxruntime ops by the plugin library's CPU reference, matches: fp32 on
    random rows within 1e-5 and the float64 twin on all three kinds within 1e-6 (onnxruntime's fp32
    LayerNormalization kernel alone is off by ~2e-5 on rows with mean 2000)."""
    from polygraphy_ext.plugins.ort_reference import lower_plugin_nodes

    for dtype, kinds, atol in ((np.float32, ("random",), FP32_ATOL), (np.float64, None, 1e-6)):
        model = build(replace(spec, dtype=dtype))
        fused, report = run_pass(model, target="plugin", **options)
        assert report.fused, report.summary()
        onnx.checker.check_model(fused, full_check=True)  # plugin nodes too: their domain must be declared
        lowered, _ = lower_plugin_nodes(fused)
        assert_equivalent(model, lowered, kinds=kinds or ("random", "low_variance", "large_mean"), atol=atol, checker=False)

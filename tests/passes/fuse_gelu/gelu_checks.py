"""Assertions of the fuse-gelu tests: run the pass; original vs fused in onnxruntime on the inputs that matter."""

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import onnxruntime as ort

from polygraphy_ext.passes import fuse_gelu
from polygraphy_ext.plugins.ort_reference import lower_plugin_nodes

# (atol, rtol): onnxruntime's Gelu kernel vs the decomposed chain, which rounds after every op. onnxruntime's
# float64 Erf/Tanh/Gelu kernels are accurate to ~3e-7 relative only (measured), hence no tighter float64 bound.
TOLERANCES = {np.dtype(np.float32): (2e-6, 1e-5), np.dtype(np.float16): (2e-3, 4e-3), np.dtype(np.float64): (1e-6, 1e-6)}


def run_pass(model, infer_shapes=True, **options):
    """Like the CLI and ``FuseGelu(infer_shapes=True)``: types and shapes inferred first (raw exports lack them)."""
    if infer_shapes:
        model = onnx.shape_inference.infer_shapes(model)
    graph = gs.import_onnx(model)
    report = fuse_gelu(graph, **options)
    fused = gs.export_onnx(graph, do_type_check=False)
    return fused, report


def op_types(model):
    return [node.op_type for node in model.graph.node]


def inputs_for(model, kind, seed=0):
    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in model.graph.input:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
        shape = [d.dim_value or 2 for d in inp.type.tensor_type.shape.dim]
        if kind == "random":
            x = rng.standard_normal(shape) * 3
        elif kind == "large":  # |x| around 1e4, both signs: the erf/tanh saturate, x^3 overflows fp16
            x = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(1e3, 1e4, size=shape)
        elif kind == "near_zero":
            x = rng.standard_normal(shape) * 10.0 ** rng.integers(-7, -2, size=shape)
        else:
            raise ValueError(kind)
        feeds[inp.name] = x.astype(dtype)
    return feeds


def run(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def assert_equivalent(original, fused, kinds=("random", "large", "near_zero"), plugin=False):
    """Every output of ``fused`` equals ``original``'s within the dtype's rounding, per input kind."""
    if plugin:
        fused, counts = lower_plugin_nodes(fused)
        assert counts, "no plugin node to lower"
    else:
        onnx.checker.check_model(fused, full_check=True)
    for kind in kinds:
        feeds = inputs_for(original, kind)
        for want, got in zip(run(original, feeds), run(fused, feeds)):
            atol, rtol = TOLERANCES[np.dtype(want.dtype)]
            assert got.dtype == want.dtype
            if kind == "near_zero":
                atol = 0.0 if want.dtype != np.float16 else 1e-7
            np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), atol=atol, rtol=rtol, err_msg=kind)


def assert_unchanged(model, infer_shapes=True, **options):
    """The pass leaves the model byte-identical and reports why."""
    if infer_shapes:
        model = onnx.shape_inference.infer_shapes(model)
    graph = gs.import_onnx(model)
    report = fuse_gelu(graph, **options)
    assert not report.fused, report.summary()
    assert gs.export_onnx(graph, do_type_check=False).graph.SerializeToString() == gs.export_onnx(
        gs.import_onnx(model), do_type_check=False
    ).graph.SerializeToString()
    return report

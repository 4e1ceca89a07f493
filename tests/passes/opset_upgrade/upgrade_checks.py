"""Build a small model at an old opset, upgrade it, and prove onnxruntime computes exactly the same thing."""

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import onnxruntime as ort
from onnx import helper, numpy_helper

from polygraphy_ext.passes.opset_upgrade import upgrade_default_opset


def tensor(name, dtype, shape):
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype)) if dtype is not None else onnx.TensorProto.UNDEFINED
    return helper.make_tensor_value_info(name, elem, shape)


def model(nodes, inputs, outputs, opset, initializers=(), functions=(), check=True):
    """``inputs``: {name: array} (their dtype and shape become the graph's); ``outputs``: names, typed by
    inference, or ``(name, dtype, shape)`` where inference cannot type them."""
    graph = helper.make_graph(
        nodes,
        "g",
        [tensor(name, value.dtype, list(value.shape)) for name, value in inputs.items()],
        [tensor(*out) if isinstance(out, tuple) else helper.make_empty_tensor_value_info(out) for out in outputs],
        [numpy_helper.from_array(np.asarray(v), n) for n, v in dict(initializers).items()],
    )
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("local", 1)] if functions else [])
    made = helper.make_model(graph, opset_imports=imports, functions=list(functions), ir_version=7 if opset <= 12 else 8)
    if not check:
        return made
    inferred = onnx.shape_inference.infer_shapes(made, strict_mode=True)
    onnx.checker.check_model(inferred, full_check=True)
    return inferred


def upgrade(original, target, **options):
    graph = gs.import_onnx(original)
    report = upgrade_default_opset(graph, target, **options)
    return gs.export_onnx(graph, do_type_check=False), report


def run(proto, feeds):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def assert_upgrades_exactly(original, target, feeds, **options):
    """The upgraded model passes the full checker at ``target`` and gives bit-identical outputs."""
    upgraded, report = upgrade(original, target, **options)
    assert [(o.domain, o.version) for o in upgraded.opset_import if o.domain in ("", "ai.onnx")] == [("", target)]
    onnx.checker.check_model(upgraded, full_check=True)
    before, after = run(original, feeds), run(upgraded, feeds)
    assert len(before) == len(after)
    for expected, actual in zip(before, after):
        assert expected.dtype == actual.dtype and expected.shape == actual.shape
        np.testing.assert_array_equal(expected, actual)
    return upgraded, report

"""Small FP32 models for the to-fp16 tests, built in code (no fixtures to regenerate)."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HIDDEN = 32


def _model(nodes, inputs, outputs, inits, opset=17):
    graph = helper.make_graph(nodes, "m", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def overflow_layernorm_model(scale=400.0, seed=0):
    """x -> MatMul (large activations) -> decomposed LayerNorm -> MatMul -> y.

    The projection's outputs reach a few hundred: their squares (Pow) and the variance exceed 65504, so a blind
    FP16 conversion makes the variance inf and the output 0/NaN. Everything else is well inside FP16's range.
    """
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((HIDDEN, HIDDEN)) * scale / np.sqrt(HIDDEN)).astype(np.float32)
    w2 = (rng.standard_normal((HIDDEN, 8)) / np.sqrt(HIDDEN)).astype(np.float32)
    gamma = (1.0 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32)
    beta = (0.1 * rng.standard_normal(HIDDEN)).astype(np.float32)
    inits = [
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(gamma, "gamma"),
        numpy_helper.from_array(beta, "beta"),
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        numpy_helper.from_array(np.array(1e-5, np.float32), "eps"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="proj"),
        helper.make_node("ReduceMean", ["h"], ["mean"], name="ln_mean", axes=[-1]),
        helper.make_node("Sub", ["h", "mean"], ["d"], name="ln_sub"),
        helper.make_node("Pow", ["d", "two"], ["d2"], name="ln_pow"),
        helper.make_node("ReduceMean", ["d2"], ["var"], name="ln_var", axes=[-1]),
        helper.make_node("Add", ["var", "eps"], ["var_eps"], name="ln_add_eps"),
        helper.make_node("Sqrt", ["var_eps"], ["std"], name="ln_sqrt"),
        helper.make_node("Div", ["d", "std"], ["normed"], name="ln_div"),
        helper.make_node("Mul", ["normed", "gamma"], ["scaled"], name="ln_gamma"),
        helper.make_node("Add", ["scaled", "beta"], ["ln_out"], name="ln_beta"),
        helper.make_node("MatMul", ["ln_out", "w2"], ["y"], name="head"),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", HIDDEN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        inits,
    )


OVERFLOW_NODES = {"ln_pow", "ln_var", "ln_add_eps", "ln_sqrt"}


def batches_for(model, n=2, rows=16, seed=0):
    rng = np.random.default_rng(seed)
    inp = model.graph.input[0]
    width = inp.type.tensor_type.shape.dim[1].dim_value
    return [{inp.name: rng.standard_normal((rows, width)).astype(np.float32)} for _ in range(n)]

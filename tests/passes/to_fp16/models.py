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


def cancellation_model(seed=0):
    """Two branches: ``shift``/``unshift`` add and remove 1000 (in FP16 the sum keeps 0.5 steps, so the
    difference loses x's fraction: an error far above 1e-2 that no range check sees), and a MatMul branch
    that is fine in FP16. Only the two cancellation nodes must stay FP32."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((HIDDEN, HIDDEN)) / np.sqrt(HIDDEN)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(1000.0, np.float32), "offset")]
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["proj"], name="proj"),
        helper.make_node("Relu", ["proj"], ["act"], name="act"),
        helper.make_node("Add", ["x", "offset"], ["shifted"], name="shift"),
        helper.make_node("Sub", ["shifted", "offset"], ["unshifted"], name="unshift"),
        helper.make_node("Add", ["act", "unshifted"], ["y"], name="merge"),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", HIDDEN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", HIDDEN])],
        inits,
    )


CANCELLATION_NODES = {"shift", "unshift"}


def masked_attention_model(seed=0):
    """Attention with the additive mask exporters emit: (1 - mask) * finfo(float32).min. In FP16 the constant
    is -inf and 0 * -inf is NaN; the mask path and the masked scores must stay FP32."""
    rng = np.random.default_rng(seed)
    wq, wk, wv = ((rng.standard_normal((HIDDEN, HIDDEN)) / np.sqrt(HIDDEN)).astype(np.float32) for _ in range(3))
    inits = [
        numpy_helper.from_array(wq, "wq"),
        numpy_helper.from_array(wk, "wk"),
        numpy_helper.from_array(wv, "wv"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(np.finfo(np.float32).min, np.float32), "neg_big"),
        numpy_helper.from_array(np.array(1.0 / np.sqrt(HIDDEN), np.float32), "inv_sqrt_d"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q"], name="q"),
        helper.make_node("MatMul", ["x", "wk"], ["k"], name="k"),
        helper.make_node("MatMul", ["x", "wv"], ["v"], name="v"),
        helper.make_node("Transpose", ["k"], ["kt"], name="kt", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["scores"], name="scores"),
        helper.make_node("Mul", ["scores", "inv_sqrt_d"], ["scaled"], name="scale"),
        helper.make_node("Cast", ["mask"], ["mask_f"], name="mask_cast", to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axis1"], ["mask_u"], name="mask_unsqueeze"),
        helper.make_node("Sub", ["one", "mask_u"], ["inv_mask"], name="inv_mask"),
        helper.make_node("Mul", ["inv_mask", "neg_big"], ["bias"], name="mask_bias"),
        helper.make_node("Add", ["scaled", "bias"], ["masked"], name="masked"),
        helper.make_node("Softmax", ["masked"], ["probs"], name="softmax", axis=-1),
        helper.make_node("MatMul", ["probs", "v"], ["y"], name="context"),
    ]
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "axis1"))
    return _model(
        nodes,
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", HIDDEN]),
            helper.make_tensor_value_info("mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", HIDDEN])],
        inits,
    )


def masked_attention_batches(n=2, batch=2, seq=8, seed=0):
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(n):
        mask = np.ones((batch, seq), np.int64)
        mask[-1, seq // 2 :] = 0
        batches.append({"x": rng.standard_normal((batch, seq, HIDDEN)).astype(np.float32), "mask": mask})
    return batches


def integer_model():
    nodes = [helper.make_node("Add", ["a", "a"], ["b"], name="double")]
    return _model(
        nodes,
        [helper.make_tensor_value_info("a", TensorProto.INT64, [4])],
        [helper.make_tensor_value_info("b", TensorProto.INT64, [4])],
        [],
    )


def fp16_model():
    w = numpy_helper.from_array(np.ones((4, 4), np.float16), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [2, 4])],
        [w],
    )


def if_model():
    """An If whose branches read an outer FP32 tensor: the If stays FP32 and reads it through a Cast."""
    then_graph = helper.make_graph(
        [helper.make_node("Relu", ["h"], ["t_out"], name="then_relu")],
        "then",
        [],
        [helper.make_tensor_value_info("t_out", TensorProto.FLOAT, None)],
    )
    else_graph = helper.make_graph(
        [helper.make_node("Neg", ["h"], ["e_out"], name="else_neg")],
        "else",
        [],
        [helper.make_tensor_value_info("e_out", TensorProto.FLOAT, None)],
    )
    w = numpy_helper.from_array(np.eye(HIDDEN, dtype=np.float32), "w")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
        helper.make_node("If", ["cond"], ["branch"], name="choose", then_branch=then_graph, else_branch=else_graph),
        helper.make_node("Mul", ["branch", "h"], ["y"], name="mul"),
    ]
    return _model(
        nodes,
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, HIDDEN]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, HIDDEN])],
        [w],
    )


def transformer_stack_model(layers=6, hidden=64, ffn=256, offset=200.0, seed=0):
    """Post-LN transformer encoder layers written out op by op (as TorchScript exports them), where each
    LayerNorm input carries a large per-channel offset (``offset``: the "massive activations" of LLMs, removed
    by the normalization): FP16 keeps numbers near 200 to 1/8, so the offset sum and the LayerNorm's mean
    subtraction must stay FP32 for the output to be right, which no range check sees; the rest converts.
    For the benchmark; tests use a layer or two."""
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    def node(op, inputs, name, **attrs):
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    const("two", 2.0)
    const("eps", 1e-5)
    const("half", 0.5)
    const("one", 1.0)
    const("inv_sqrt2", 1.0 / np.sqrt(2.0))
    const("inv_sqrt_d", 1.0 / np.sqrt(hidden))

    def layer_norm(prefix, value):
        shifted = node("Add", [value, const(f"{prefix}_offset_value", offset + rng.standard_normal(hidden))], f"{prefix}_offset")
        mean = node("ReduceMean", [shifted], f"{prefix}_mean", axes=[-1])
        diff = node("Sub", [shifted, mean], f"{prefix}_sub")
        square = node("Pow", [diff, "two"], f"{prefix}_pow")
        var = node("ReduceMean", [square], f"{prefix}_var", axes=[-1])
        std = node("Sqrt", [node("Add", [var, "eps"], f"{prefix}_add_eps")], f"{prefix}_sqrt")
        normed = node("Div", [diff, std], f"{prefix}_div")
        gamma = const(f"{prefix}_gamma", 1 + 0.1 * rng.standard_normal(hidden))
        beta = const(f"{prefix}_beta", 0.1 * rng.standard_normal(hidden))
        return node("Add", [node("Mul", [normed, gamma], f"{prefix}_scale"), beta], f"{prefix}_shift")

    def linear(prefix, value, n_in, n_out):
        w = const(f"{prefix}_w", rng.standard_normal((n_in, n_out)) / np.sqrt(n_in))
        b = const(f"{prefix}_b", 0.02 * rng.standard_normal(n_out))
        return node("Add", [node("MatMul", [value, w], f"{prefix}_matmul"), b], f"{prefix}_bias")

    x = "x"
    for i in range(layers):
        p = f"l{i}"
        q = linear(f"{p}_q", x, hidden, hidden)
        k = linear(f"{p}_k", x, hidden, hidden)
        v = linear(f"{p}_v", x, hidden, hidden)
        kt = node("Transpose", [k], f"{p}_kt", perm=[0, 2, 1])
        scores = node("Mul", [node("MatMul", [q, kt], f"{p}_scores"), "inv_sqrt_d"], f"{p}_scaled")
        probs = node("Softmax", [scores], f"{p}_softmax", axis=-1)
        attn = linear(f"{p}_o", node("MatMul", [probs, v], f"{p}_context"), hidden, hidden)
        x = layer_norm(f"{p}_ln1", node("Add", [x, attn], f"{p}_residual1"))
        h = linear(f"{p}_ffn1", x, hidden, ffn)
        erf = node("Erf", [node("Mul", [h, "inv_sqrt2"], f"{p}_gelu_div")], f"{p}_gelu_erf")
        gate = node("Add", [erf, "one"], f"{p}_gelu_add")
        gelu = node("Mul", [node("Mul", [h, gate], f"{p}_gelu_mul"), "half"], f"{p}_gelu")
        ffn_out = linear(f"{p}_ffn2", gelu, ffn, hidden)
        x = layer_norm(f"{p}_ln2", node("Add", [x, ffn_out], f"{p}_residual2"))
    nodes[-1].output[0] = "y"
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", hidden])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", hidden])],
        inits,
    )


def sequence_batches(model, n=2, batch=2, seq=16, seed=0):
    rng = np.random.default_rng(seed)
    hidden = model.graph.input[0].type.tensor_type.shape.dim[2].dim_value
    return [{"x": rng.standard_normal((batch, seq, hidden)).astype(np.float32)} for _ in range(n)]


def tiny_epsilon_layernorm_model(seed=0):
    """A decomposed LayerNorm with BERT's eps of 1e-12, which is 0 in FP16: on a constant row (padding) the
    variance is 0, and 0 / sqrt(0 + 0) is NaN."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((HIDDEN, HIDDEN)) / np.sqrt(HIDDEN)).astype(np.float32)
    inits = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(np.array(1e-12, np.float32), "eps"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mean"], name="mean", axes=[-1]),
        helper.make_node("Sub", ["x", "mean"], ["d"], name="sub"),
        helper.make_node("Mul", ["d", "d"], ["d2"], name="square"),
        helper.make_node("ReduceMean", ["d2"], ["var"], name="var", axes=[-1]),
        helper.make_node("Add", ["var", "eps"], ["var_eps"], name="add_eps"),
        helper.make_node("Sqrt", ["var_eps"], ["std"], name="sqrt"),
        helper.make_node("Div", ["d", "std"], ["normed"], name="div"),
        helper.make_node("MatMul", ["normed", "w"], ["y"], name="proj"),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", HIDDEN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", HIDDEN])],
        inits,
    )


def padded_batches(n=2, rows=8, seed=0):
    """Rows of noise, the last one constant (a padding row)."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(n):
        x = rng.standard_normal((rows, HIDDEN)).astype(np.float32)
        x[-1] = 0.5
        batches.append({"x": x})
    return batches


def overflow_layernorm_stack_model(blocks=8, scale=400.0, seed=0):
    """``blocks`` residual blocks, each MatMul (activations of a few hundred) -> decomposed LayerNorm (squares and
    variance overflow FP16) -> MatMul back to the stream: 4 overflowing nodes per block, everything else FP16-safe.
    For the benchmark (a search over many nodes for bisection-based tools)."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        numpy_helper.from_array(np.array(1e-5, np.float32), "eps"),
    ]
    nodes = []
    x = "x"
    for b in range(blocks):
        p = f"b{b}"
        for name, array in (
            (f"{p}_w1", rng.standard_normal((HIDDEN, HIDDEN)) * scale / np.sqrt(HIDDEN)),
            (f"{p}_w2", rng.standard_normal((HIDDEN, HIDDEN)) / np.sqrt(HIDDEN) / 4),
            (f"{p}_gamma", 1.0 + 0.1 * rng.standard_normal(HIDDEN)),
            (f"{p}_beta", 0.1 * rng.standard_normal(HIDDEN)),
        ):
            inits.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        chain = [
            ("MatMul", [x, f"{p}_w1"], "proj"),
            ("ReduceMean", None, "ln_mean"),
            ("Sub", None, "ln_sub"),
            ("Pow", None, "ln_pow"),
            ("ReduceMean", None, "ln_var"),
            ("Add", None, "ln_add_eps"),
            ("Sqrt", None, "ln_sqrt"),
            ("Div", None, "ln_div"),
            ("Mul", None, "ln_gamma"),
            ("Add", None, "ln_beta"),
            ("MatMul", None, "out"),
            ("Add", None, "residual"),
        ]
        t = {name: f"{p}_{name}" for _, _, name in chain}
        wiring = {
            "ln_mean": [t["proj"]],
            "ln_sub": [t["proj"], t["ln_mean"]],
            "ln_pow": [t["ln_sub"], "two"],
            "ln_var": [t["ln_pow"]],
            "ln_add_eps": [t["ln_var"], "eps"],
            "ln_sqrt": [t["ln_add_eps"]],
            "ln_div": [t["ln_sub"], t["ln_sqrt"]],
            "ln_gamma": [t["ln_div"], f"{p}_gamma"],
            "ln_beta": [t["ln_gamma"], f"{p}_beta"],
            "out": [t["ln_beta"], f"{p}_w2"],
            "residual": [x, t["out"]],
        }
        for op, inputs, name in chain:
            attrs = {"axes": [-1]} if op == "ReduceMean" else {}
            nodes.append(helper.make_node(op, inputs or wiring[name], [t[name]], name=t[name], **attrs))
        x = t["residual"]
    nodes[-1].output[0] = "y"
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", HIDDEN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", HIDDEN])],
        inits,
    )

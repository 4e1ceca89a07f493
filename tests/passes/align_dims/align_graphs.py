"""Small synthetic ONNX models for align-dims tests, built with onnx.helper (float32, seeded weights)."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class ModelBuilder:
    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.nodes = []
        self.inits = []
        self.inputs = []
        self.outputs = []
        self._count = 0

    def name(self, base):
        self._count += 1
        return f"{base}_{self._count}"

    def input(self, name, shape, dtype=TensorProto.FLOAT):
        self.inputs.append(helper.make_tensor_value_info(name, dtype, shape))
        return name

    def output(self, name):
        self.outputs.append(name)

    def const(self, values, base="c"):
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(values), name))
        return name

    def weight(self, *shape, base="w"):
        return self.const((self.rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32), base)

    def bias(self, n, base="bias"):
        return self.const(self.rng.standard_normal(n).astype(np.float32), base)

    def op(self, op_type, inputs, n_out=1, **attrs):
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    def linear(self, x, k, n, bias=True):
        y = self.op("MatMul", [x, self.weight(k, n)])
        if bias:
            y = self.op("Add", [y, self.bias(n)])
        return y

    def gelu_decomposed(self, x):
        """The erf GELU the TorchScript exporter emits (opset < 20): x * 0.5 * (1 + erf(x / sqrt 2))."""
        scaled = self.op("Div", [x, self.const(np.float32(np.sqrt(2.0)))])
        erf = self.op("Erf", [scaled])
        one_plus = self.op("Add", [erf, self.const(np.float32(1.0))])
        prod = self.op("Mul", [x, one_plus])
        return self.op("Mul", [prod, self.const(np.float32(0.5))])

    def layernorm(self, x, width):
        return self.op(
            "LayerNormalization",
            [x, self.const(np.ones(width, np.float32)), self.const(np.zeros(width, np.float32))],
            axis=-1,
        )

    def conv(self, x, c_in, c_out, k=3, group=1, bias=True):
        w = (self.rng.standard_normal((c_out, c_in // group, k, k)) / np.sqrt(c_in * k * k / group)).astype(np.float32)
        inputs = [x, self.const(w, "convw")]
        if bias:
            inputs.append(self.bias(c_out, "convb"))
        return self.op("Conv", inputs, group=group, pads=[k // 2] * 4, kernel_shape=[k, k])

    def model(self, opset=OPSET, output_shapes=None):
        graph = helper.make_graph(self.nodes, "align_dims_test", self.inputs, [], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        # Graph outputs with the types and shapes ONNX infers for them (or float ones of output_shapes[name]).
        inferred = {vi.name: vi for vi in onnx.shape_inference.infer_shapes(model).graph.value_info}
        for name, shape in (output_shapes or {}).items():
            inferred[name] = helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
        model.graph.output.extend(inferred[name] for name in self.outputs)
        onnx.checker.check_model(model)
        return model


def bert_ffn(hidden=64, ffn=191, batch="batch", seq=16, gelu="decomposed"):
    """LayerNorm -> MatMul(hidden x ffn) -> Add -> GELU -> MatMul(ffn x hidden) -> Add -> residual -> LayerNorm."""
    b = ModelBuilder()
    x = b.input("x", [batch, seq, hidden])
    ln = b.layernorm(x, hidden)
    h = b.linear(ln, hidden, ffn)
    h = b.gelu_decomposed(h) if gelu == "decomposed" else b.op(gelu, [h])
    y = b.linear(h, ffn, hidden)
    y = b.op("Add", [y, x])
    y = b.layernorm(y, hidden)
    b.output(y)
    return b.model()


def vocab_projection(hidden=32, vocab=1001, seq=4):
    b = ModelBuilder(1)
    x = b.input("x", ["batch", seq, hidden])
    logits = b.op("MatMul", [b.layernorm(x, hidden), b.weight(hidden, vocab)])
    b.output(logits)
    return b.model()


def uniformer_block(channels=64, height=7, width=7, batch="batch"):
    """LayerNorm -> Reshape(Concat(Shape(x)[0], H, W, -1)) -> Transpose -> depthwise Conv, with a dynamic batch:
    the channel dim reaches the conv as a runtime value although it is always ``channels``."""
    b = ModelBuilder(2)
    x = b.input("x", [batch, height * width, channels])
    ln = b.layernorm(x, channels)
    shape = b.op("Shape", [ln])
    batch_dim = b.op("Gather", [shape, b.const(np.array(0, np.int64))], axis=0)
    batch_dim = b.op("Unsqueeze", [batch_dim, b.const(np.array([0], np.int64))])
    target = b.op(
        "Concat", [batch_dim, b.const(np.array([height, width, -1], np.int64))], axis=0
    )
    grid = b.op("Reshape", [ln, target])
    nchw = b.op("Transpose", [grid], perm=[0, 3, 1, 2])
    y = b.conv(nchw, channels, channels, group=channels)
    b.output(y)
    return b.model()


def conv_chain(channels=(8, 13, 29, 16), depthwise_after=None, grouped=None, batchnorm=False, size=8):
    """Conv -> [BatchNorm] -> Relu -> ... with the given channel counts; a depthwise conv (+Relu) after stage
    ``depthwise_after``; ``grouped=(stage, groups)`` makes that stage's conv grouped."""
    b = ModelBuilder(3)
    x = b.input("x", ["batch", channels[0], size, size])
    for stage, (c_in, c_out) in enumerate(zip(channels, channels[1:])):
        groups = grouped[1] if grouped and grouped[0] == stage else 1
        x = b.conv(x, c_in, c_out, group=groups)
        if batchnorm and stage == 0:
            rng = b.rng
            params = [rng.uniform(0.5, 1.5, c_out), rng.standard_normal(c_out), rng.standard_normal(c_out),
                      rng.uniform(0.5, 2.0, c_out)]
            x = b.op("BatchNormalization", [x] + [b.const(p.astype(np.float32), "bn") for p in params])
        if stage < len(channels) - 2:
            x = b.op("Relu", [x])
        if depthwise_after == stage:
            x = b.op("Relu", [b.conv(x, c_out, c_out, group=c_out)])
    b.output(x)
    return b.model()


def gemm_mlp(batch=4, k=32, hidden=93, n=16):
    """Gemm(transB=1) -> Relu -> Gemm(transA=0, transB=1), biases as Gemm C."""
    b = ModelBuilder(4)
    x = b.input("x", [batch, k])
    h = b.op("Gemm", [x, b.weight(hidden, k), b.bias(hidden, "c")], transB=1)
    h = b.op("Relu", [h])
    y = b.op("Gemm", [h, b.weight(n, hidden), b.bias(n, "c")], transB=1)
    b.output(y)
    return b.model()


def stops_at(op_type, hidden=64, inner=93):
    """MatMul(hidden x inner) -> Add -> ``op_type`` over the padded dim -> MatMul(inner x hidden)."""
    b = ModelBuilder(5)
    x = b.input("x", ["batch", 8, hidden])
    h = b.linear(x, hidden, inner)
    if op_type == "LayerNormalization":
        h = b.layernorm(h, inner)
    elif op_type == "Softmax":
        h = b.op("Softmax", [h], axis=-1)
    elif op_type == "ReduceMean":
        h = b.op("Sub", [h, b.op("ReduceMean", [h], axes=[-1], keepdims=1)])
    elif op_type == "Reshape":
        # Splits the padded axis into heads (a Reshape keeping it last and whole is padded through).
        h = b.op("Reshape", [h, b.const(np.array([0, 0, 3, inner // 3], np.int64))])
        b.output(b.op("MatMul", [h, b.weight(inner // 3, hidden)]))
        return b.model()
    elif op_type == "ResidualAdd":
        # A runtime operand that is no GEMM output (one would be padded with it, as a gated FFN's up projection).
        h = b.op("Add", [h, b.input("residual", ["batch", 8, inner])])
    elif op_type == "Sigmoid":
        h = b.op("Sigmoid", [h])  # sigmoid(0) = 0.5: fine, the next MatMul's zero rows absorb it
    y = b.op("MatMul", [h, b.weight(inner, hidden)])
    b.output(y)
    return b.model()


def attention_scores(seq=13, head=24):
    """Q K^T with odd sizes, both operands activations: must be reported and left alone."""
    b = ModelBuilder(6)
    q = b.input("q", ["batch", seq, head])
    k = b.input("k", ["batch", seq, head])
    kt = b.op("Transpose", [k], perm=[0, 2, 1])
    b.output(b.op("Softmax", [b.op("MatMul", [q, kt])], axis=-1))
    return b.model()


def reshape_dynamic_sequence(hidden=64):
    """Reshape to (B, S, -1) with S genuinely dynamic, feeding a MatMul: the -1 resolves to a fixed hidden size."""
    b = ModelBuilder(7)
    x = b.input("x", ["batch", "sequence", hidden])
    shape = b.op("Shape", [x])
    head = b.op("Slice", [shape, b.const(np.array([0], np.int64)), b.const(np.array([2], np.int64))])
    target = b.op("Concat", [head, b.const(np.array([-1], np.int64))], axis=0)
    y = b.op("MatMul", [b.op("Reshape", [x, target]), b.weight(hidden, 16)])
    b.output(y)
    return b.model()


def reshape_sequence_needed(hidden=16):
    """Reshape (B, S, H) -> (B, H, S) computed from Shape, feeding a Conv1d-like MatMul over S: S is dynamic,
    so the pass must leave it alone."""
    b = ModelBuilder(8)
    x = b.input("x", ["batch", "sequence", hidden])
    shape = b.op("Shape", [x])
    dims = [b.op("Unsqueeze", [b.op("Gather", [shape, b.const(np.array(i, np.int64))], axis=0),
                               b.const(np.array([0], np.int64))]) for i in (0, 2, 1)]
    target = b.op("Concat", dims, axis=0)
    y = b.op("MatMul", [b.op("Reshape", [x, target]), b.input("w", ["sequence", 4])])
    b.output(y)
    return b.model()


def conv_transpose_chain(size=6):
    """Conv(8 -> 13) -> Relu -> ConvTranspose(13 -> 29, stride 2) -> Relu -> Conv(29 -> 16): the ConvTranspose
    absorbs the first padding (zero input-channel rows, weight axis 0) and produces the second (weight axis 1)."""
    b = ModelBuilder(14)
    x = b.input("x", ["batch", 8, size, size])
    h = b.op("Relu", [b.conv(x, 8, 13)])
    w = (b.rng.standard_normal((13, 29, 2, 2)) / np.sqrt(13 * 4)).astype(np.float32)
    h = b.op("ConvTranspose", [h, b.const(w, "deconvw"), b.bias(29, "deconvb")], strides=[2, 2], kernel_shape=[2, 2])
    b.output(b.conv(b.op("Relu", [h]), 29, 16, k=1))
    return b.model()


def gemm_trans_a(k=31, batch=4, hidden=93, n=16):
    """Gemm(transA=1: A is K x M) -> Relu -> Gemm: K sits on axis 0 of the input, N on axis 1 of the output."""
    b = ModelBuilder(15)
    x = b.input("x", [k, batch])
    h = b.op("Gemm", [x, b.weight(k, hidden), b.bias(hidden, "c")], transA=1)
    h = b.op("Relu", [h])
    b.output(b.op("Gemm", [h, b.weight(hidden, n)]))
    return b.model()


def old_opset_head(k=31, vocab=1001, opset=9):
    """MatMul with an odd K and an odd N ending in a graph output, at an opset where Slice/Pad take attributes."""
    b = ModelBuilder(16)
    x = b.input("x", ["batch", k])
    b.output(b.op("MatMul", [b.op("Relu", [x]), b.weight(k, vocab)]))
    return b.model(opset=opset)


def chain_with(middle, hidden=16, inner=45, extra_input=False):
    """MatMul(hidden x inner) -> ``middle(builder, h, extra)`` -> MatMul(inner x hidden); ``extra`` is a second
    graph input of shape (batch, inner) when ``extra_input``."""
    b = ModelBuilder(17)
    x = b.input("x", ["batch", hidden])
    extra = b.input("extra", ["batch", inner]) if extra_input else None
    h = middle(b, b.op("MatMul", [x, b.weight(hidden, inner)]), extra)
    b.output(b.op("MatMul", [h, b.weight(inner, hidden)]))
    return b.model()


def depthwise_multiplier(channels=13, size=6):
    """Conv(8 -> 13) -> Relu -> Conv(13 -> 26, group=13): depthwise with channel multiplier 2, not per-channel."""
    b = ModelBuilder(18)
    x = b.input("x", ["batch", 8, size, size])
    h = b.op("Relu", [b.conv(x, 8, channels)])
    b.output(b.conv(h, channels, 2 * channels, group=channels))
    return b.model()


def constant_node_weights(hidden=16, inner=93):
    """MatMul -> Relu -> MatMul with both weights as ``Constant`` nodes instead of initializers."""
    b = ModelBuilder(19)
    x = b.input("x", ["batch", hidden])

    def constant_node(values):
        name = b.name("weight_node")
        b.nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(values, name + "_value")))
        return name

    w1 = (b.rng.standard_normal((hidden, inner)) / 4).astype(np.float32)
    w2 = (b.rng.standard_normal((inner, hidden)) / 4).astype(np.float32)
    h = b.op("Relu", [b.op("MatMul", [x, constant_node(w1)])])
    b.output(b.op("MatMul", [h, constant_node(w2)]))
    return b.model()


# -- what exporters put between a weight and its use (issue 19) ---------------------------------------------------


def layernorm_decomposed(b, x, width):
    """The LayerNorm chain the TorchScript exporter emits below opset 17."""
    axes = {"axes": [-1]} if b.opset < 18 else {}
    mean_inputs = [x] if b.opset < 18 else [x, b.const(np.array([-1], np.int64))]
    centered = b.op("Sub", [x, b.op("ReduceMean", mean_inputs, keepdims=1, **axes)])
    var_inputs = [b.op("Pow", [centered, b.const(np.float32(2.0))])]
    if b.opset >= 18:
        var_inputs.append(b.const(np.array([-1], np.int64)))
    var = b.op("ReduceMean", var_inputs, keepdims=1, **axes)
    std = b.op("Sqrt", [b.op("Add", [var, b.const(np.float32(1e-5))])])
    normed = b.op("Div", [centered, std])
    scale = b.const(b.rng.uniform(0.5, 1.5, width).astype(np.float32), "gamma")
    return b.op("Add", [b.op("Mul", [normed, scale]), b.bias(width, "beta")])


def bert_layers_merged_bias(layers=2, hidden=64, ffn=191, seq=8, other_user=False, decomposed_ln=False, opset=OPSET):
    """Post-LN BERT FFNs as the TorchScript exporter writes them: the equal FFN biases of every layer merged into
    ONE initializer, reached by layers > 0 through Identity nodes. ``other_user``: a non-FFN node also reads it."""
    b = ModelBuilder(11)
    b.opset = opset
    x = b.input("x", ["batch", "sequence", hidden])
    shared = b.const(np.full(ffn, 0.25, np.float32), "merged_bias")
    for layer in range(layers):
        bias = shared if layer == 0 else b.op("Identity", [shared])
        h = b.op("Add", [b.op("MatMul", [x, b.weight(hidden, ffn)]), bias])
        h = b.gelu_decomposed(h)
        y = b.linear(h, ffn, hidden)
        y = b.op("Add", [y, x])
        x = layernorm_decomposed(b, y, hidden) if decomposed_ln else b.layernorm(y, hidden)
    b.output(x)
    if other_user:
        side = b.input("side", ["batch", ffn])
        b.output(b.op("Add", [side, b.op("Identity", [shared])]))
    return b.model(opset)


def weight_behind(form, hidden=32, ffn=45):
    """An FFN whose first weight and bias reach the MatMul/Add through ``form``: "constant_node" (Constant with
    value / value_floats), "transpose" (an unfolded Transpose of the [N, K] weight, as dynamo emits), "cast"
    (fp16 initializers cast to fp32), "reshape" (a flat weight reshaped), or "identity_chain" (two Identities)."""
    b = ModelBuilder(12)
    x = b.input("x", ["batch", 5, hidden])
    w1 = (b.rng.standard_normal((hidden, ffn)) / np.sqrt(hidden)).astype(np.float32)
    bias = b.rng.standard_normal(ffn).astype(np.float32)
    if form == "constant_node":
        w = b.op("Constant", [], value=numpy_helper.from_array(w1, b.name("w")))
        c = b.op("Constant", [], value_floats=[float(v) for v in bias])
    elif form == "transpose":
        w = b.op("Transpose", [b.const(np.ascontiguousarray(w1.T), "w_nk")], perm=[1, 0])
        c = b.const(bias)
    elif form == "cast":
        w = b.op("Cast", [b.const(w1.astype(np.float16), "w16")], to=TensorProto.FLOAT)
        c = b.op("Cast", [b.const(bias.astype(np.float16), "b16")], to=TensorProto.FLOAT)
    elif form == "reshape":
        w = b.op("Reshape", [b.const(w1.reshape(-1), "w_flat"), b.const(np.array([hidden, ffn], np.int64))])
        c = b.op("Unsqueeze", [b.const(bias), b.const(np.array([0], np.int64))])  # [1, N]: broadcasts the same
    elif form == "identity_chain":
        w = b.op("Identity", [b.op("Identity", [b.const(w1)])])
        c = b.op("Identity", [b.const(bias)])
    else:
        raise ValueError(form)
    h = b.op("Relu", [b.op("Add", [b.op("MatMul", [x, w]), c])])
    b.output(b.linear(h, ffn, hidden))
    return b.model()


def conv1d_gemm_ffn(hidden=64, ffn=191, target="computed", bias_through_identity=True):
    """GPT-2's Conv1D MLP as the TorchScript exporter writes it: x.view(-1, H) -> Gemm(W, b) -> view(B, S, N) ->
    tanh GELU -> view(-1, N) -> Gemm -> view(B, S, H). ``target``: "computed" (Shape/Gather/Concat chains with the
    width as a Concat literal or read from the tensor's shape) or "constant" (folded targets [-1, N] / [0, 0, N])."""
    b = ModelBuilder(13)
    seq = 5
    x = b.input("x", ["batch", "sequence" if target == "computed" else seq, hidden])
    i64 = lambda *v: b.const(np.array(v, np.int64))  # noqa: E731

    def flat(t, width):
        if target == "constant":
            return b.op("Reshape", [t, i64(-1, width)])
        last = b.op("Gather", [b.op("Shape", [t]), b.const(np.array(-1, np.int64))], axis=0)
        return b.op("Reshape", [t, b.op("Concat", [i64(-1), b.op("Unsqueeze", [last, i64(0)])], axis=0)])

    def unflat(t, like, width):
        if target == "constant":
            return b.op("Reshape", [t, i64(-1, seq, width)])
        lead = b.op("Slice", [b.op("Shape", [like]), i64(0), i64(-1)])
        return b.op("Reshape", [t, b.op("Concat", [lead, i64(width)], axis=0)])

    def conv1d(t, k, n):
        bias = b.bias(n)
        if bias_through_identity:
            bias = b.op("Identity", [bias])
        return unflat(b.op("Gemm", [flat(t, k), b.weight(k, n), bias]), t, n)

    h = conv1d(x, hidden, ffn)
    cube = b.op("Mul", [b.op("Pow", [h, b.const(np.float32(3.0))]), b.const(np.float32(0.044715))])
    inner = b.op("Mul", [b.op("Add", [h, cube]), b.const(np.float32(np.sqrt(2 / np.pi)))])
    act = b.op("Mul", [b.op("Mul", [h, b.const(np.float32(0.5))]), b.op("Add", [b.op("Tanh", [inner]), b.const(np.float32(1.0))])])
    b.output(b.op("Add", [conv1d(act, ffn, hidden), x]))
    return b.model()


def shape_width_used_elsewhere(hidden=32, ffn=45):
    """An FFN whose padded width is also read by Shape for arithmetic (mean over the width by hand): that Shape must
    see the true width."""
    b = ModelBuilder(14)
    x = b.input("x", ["batch", 6, hidden])
    h = b.op("Relu", [b.linear(x, hidden, ffn)])
    width = b.op("Cast", [b.op("Gather", [b.op("Shape", [h]), b.const(np.array(-1, np.int64))], axis=0)], to=TensorProto.FLOAT)
    y = b.linear(h, ffn, hidden)
    b.output(b.op("Div", [y, width]))
    return b.model()


def swiglu_ffn(hidden=64, ffn=150, layers=2):
    """LLaMA's MLP: down(silu(gate(x)) * up(x)), SiLU exported as x * Sigmoid(x)."""
    b = ModelBuilder(15)
    x = b.input("x", ["batch", "sequence", hidden])
    for _ in range(layers):
        gate = b.op("MatMul", [x, b.weight(hidden, ffn)])
        up = b.op("MatMul", [x, b.weight(hidden, ffn)])
        silu = b.op("Mul", [gate, b.op("Sigmoid", [gate])])
        x = b.op("Add", [x, b.op("MatMul", [b.op("Mul", [silu, up]), b.weight(ffn, hidden)])])
    b.output(x)
    return b.model()


def computed_target_already_static(hidden=64):
    """x.view(-1, x.size(-1)) -> MatMul: the target evaluates to [-1, 64] already; nothing to make constant."""
    b = ModelBuilder(16)
    x = b.input("x", ["batch", 3, hidden])
    last = b.op("Gather", [b.op("Shape", [x]), b.const(np.array(-1, np.int64))], axis=0)
    target = b.op("Concat", [b.const(np.array([-1], np.int64)), b.op("Unsqueeze", [last, b.const(np.array([0], np.int64))])], axis=0)
    b.output(b.op("MatMul", [b.op("Reshape", [x, target]), b.weight(hidden, 16)]))
    return b.model()


def _body(builder_seed, inputs, outputs_from, shape):
    """A subgraph made with a ModelBuilder: ``inputs`` are value infos, ``outputs_from(b)`` returns output names;
    the last output is a float tensor of ``shape``, any before it a bool scalar (a Loop's condition)."""
    b = ModelBuilder(builder_seed)
    b._count = 1000 * builder_seed  # names stay unique across the model's scopes
    b.inputs.extend(inputs)
    names = outputs_from(b)
    graph = helper.make_graph(b.nodes, b.name("body"), b.inputs, [], b.inits)
    graph.output.extend(helper.make_tensor_value_info(n, TensorProto.BOOL, []) for n in names[:-1])
    graph.output.append(helper.make_tensor_value_info(names[-1], TensorProto.FLOAT, shape))
    return graph


def ffn_in_subgraphs(hidden=32, ffn=45):
    """An odd-width FFN in both branches of an If, and one in a Loop body (reading outer-scope x)."""
    b = ModelBuilder(17)
    shape = ["batch", 4, hidden]
    x = b.input("x", shape)
    cond = b.input("cond", [], TensorProto.BOOL)
    branches = {
        name: _body(seed, [], lambda bb: [bb.linear(bb.op("Relu", [bb.linear(x, hidden, ffn)]), ffn, hidden)], shape)
        for name, seed in (("then_branch", 18), ("else_branch", 19))
    }
    picked = b.op("If", [cond], **branches)
    loop_body = _body(
        20,
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("keep_going", TensorProto.BOOL, []),
            helper.make_tensor_value_info("carried", TensorProto.FLOAT, shape),
        ],
        lambda bb: [
            bb.op("Identity", ["keep_going"]),
            bb.op("Add", ["carried", bb.linear(bb.op("Tanh", [bb.linear("carried", hidden, ffn)]), ffn, hidden)]),
        ],
        shape,
    )
    trips = b.const(np.array(2, np.int64))
    looped = b.op("Loop", [trips, "", picked], body=loop_body)
    b.output(looped)
    return b.model(output_shapes={looped: shape})


def padded_tensor_read_inside_a_subgraph(hidden=32, ffn=45):
    """An odd-width activation of the main graph that an If branch also reads (outer scope): that read needs the
    true width, the main graph's own consumer can take the padded one."""
    b = ModelBuilder(21)
    x = b.input("x", ["batch", 4, hidden])
    cond = b.input("cond", [], TensorProto.BOOL)
    h = b.op("Relu", [b.linear(x, hidden, ffn)])
    branch = lambda seed: _body(seed, [], lambda bb: [bb.op("Neg", [h])], ["batch", 4, ffn])  # noqa: E731
    inside = b.op("If", [cond], then_branch=branch(22), else_branch=branch(23))
    b.output(b.linear(h, ffn, hidden))
    b.output(inside)
    return b.model()


def head_transform(hidden=64, width=60, decomposed=True):
    """BERT's prediction-head transform: MatMul(hidden x width) -> Add -> GELU -> LayerNorm(width) -> MatMul: the
    odd width is the LayerNorm's normalized dim."""
    b = ModelBuilder(24)
    b.opset = OPSET
    x = b.input("x", ["batch", "sequence", hidden])
    h = b.gelu_decomposed(b.linear(x, hidden, width))
    h = layernorm_decomposed(b, h, width) if decomposed else b.layernorm(h, width)
    b.output(b.linear(h, width, hidden))
    return b.model()


def ffn_through_layout_ops(hidden=32, ffn=45, mode="keep"):
    """Data-movement ops exporters leave in an FFN: Unsqueeze/Dropout/Squeeze/Transpose of leading axes and
    Flatten to 2-D keep the width whole and last. ``mode`` "round_trip": the width is transposed away and back;
    "off_reduction": transposed away, so the final MatMul reduces over the sequence instead (a boundary)."""
    b = ModelBuilder(25)
    seq = 6
    x = b.input("x", ["batch", seq, hidden])
    h = b.linear(x, hidden, ffn)
    h = b.op("Unsqueeze", [h, b.const(np.array([0], np.int64))])
    h = b.op("Dropout", [h])
    h = b.op("Squeeze", [h, b.const(np.array([0], np.int64))])
    h = b.op("Transpose", [h], perm=[1, 0, 2] if mode == "keep" else [0, 2, 1])
    h = b.op("Relu", [h])
    if mode == "round_trip":
        h = b.op("Transpose", [h], perm=[0, 2, 1])
    if mode == "off_reduction":
        b.output(b.op("MatMul", [h, b.weight(seq, hidden)]))
    else:
        b.output(b.op("MatMul", [b.op("Flatten", [h], axis=2), b.weight(ffn, hidden)]))
    return b.model()


def squeeze_excite_block(c_in=8, width=13, c_out=16, reduced=4, size=8):
    """Conv(width) -> Relu -> MaxPool, then a squeeze-excite gate: GlobalAveragePool -> Conv(reduced) -> Relu ->
    Conv(width) -> Sigmoid, multiplied back in, -> Conv(c_out). The gate's expanding conv is a second producer
    of the odd width."""
    b = ModelBuilder(26)
    x = b.input("x", ["batch", c_in, size, size])
    h = b.op("MaxPool", [b.op("Relu", [b.conv(x, c_in, width)])], kernel_shape=[2, 2], strides=[2, 2])
    gate = b.op("GlobalAveragePool", [h])
    gate = b.op("Relu", [b.conv(gate, width, reduced, k=1)])
    gate = b.op("Sigmoid", [b.conv(gate, reduced, width, k=1)])
    b.output(b.conv(b.op("Mul", [h, gate]), width, c_out))
    return b.model()


def tensordot_ffn(hidden=32, ffn=45):
    """Keras Dense on 3-D input through tf2onnx (Tensordot): Reshape(x, [-1, K]) -> MatMul -> Reshape to
    Cast(Concat(Gather(Cast(Shape(x), int32), [0, 1]), [N] int32), int64): the width is an int32 literal behind a Cast."""
    b = ModelBuilder(27)
    x = b.input("x", ["batch", "sequence", hidden])

    def dense(t, k, n):
        flat = b.op("Reshape", [t, b.const(np.array([-1, k], np.int64))])
        y = b.op("MatMul", [flat, b.weight(k, n)])
        shape32 = b.op("Cast", [b.op("Shape", [t])], to=TensorProto.INT32)
        lead = b.op("Gather", [shape32, b.const(np.array([0, 1], np.int64))], axis=0)
        target = b.op("Concat", [lead, b.const(np.array([n], np.int32))], axis=0)
        return b.op("Reshape", [y, b.op("Cast", [target], to=TensorProto.INT64)])

    h = dense(x, hidden, ffn)
    h = b.op("Mul", [h, b.op("Sigmoid", [b.op("Mul", [h, b.const(np.float32(1.702))])])])
    b.output(dense(h, ffn, hidden))
    return b.model()


def ffn_with_fused_gelu(kind, hidden=32, ffn=45):
    """MatMul -> one-node gelu(x + bias) -> MatMul: ``kind`` "plugin" (fuse-gelu's BiasGelu plugin, tanh),
    "BiasGelu" or "FastGelu" (onnxruntime's contrib ops, bias as the second input)."""
    b = ModelBuilder(28)
    x = b.input("x", ["batch", 4, hidden])
    h = b.op("MatMul", [x, b.weight(hidden, ffn)])
    bias = b.bias(ffn)
    if kind == "plugin":
        from polygraphy_ext.plugins.specs import plugin_spec

        spec = plugin_spec("BiasGelu")
        node = helper.make_node("BiasGelu", [h, bias], ["gelu"], name="bias_gelu", domain=spec.onnx_domain,
                                **spec.onnx_attrs(approximate="tanh"))
    else:
        node = helper.make_node(kind, [h, bias], ["gelu"], name="contrib_gelu", domain="com.microsoft")
    b.nodes.append(node)
    b.output(b.op("MatMul", ["gelu", b.weight(ffn, hidden)]))
    graph = helper.make_graph(b.nodes, "fused_gelu", b.inputs, [], b.inits)
    domain = spec.onnx_domain if kind == "plugin" else "com.microsoft"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(domain, 1)])
    model.ir_version = 8
    model.graph.output.append(helper.make_tensor_value_info(b.outputs[0], TensorProto.FLOAT, ["batch", 4, hidden]))
    return model

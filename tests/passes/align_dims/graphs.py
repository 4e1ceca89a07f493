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

    def op(self, op_type, inputs, n_out=1, **attrs):
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    def linear(self, x, k, n, bias=True):
        y = self.op("MatMul", [x, self.weight(k, n)])
        if bias:
            y = self.op("Add", [y, self.const(self.rng.standard_normal(n).astype(np.float32), "bias")])
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
            inputs.append(self.const(self.rng.standard_normal(c_out).astype(np.float32), "convb"))
        return self.op("Conv", inputs, group=group, pads=[k // 2] * 4, kernel_shape=[k, k])

    def model(self, opset=OPSET):
        graph = helper.make_graph(self.nodes, "align_dims_test", self.inputs, [], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        # Graph outputs with the types and shapes ONNX infers for them.
        inferred = {vi.name: vi for vi in onnx.shape_inference.infer_shapes(model).graph.value_info}
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

"""Small ONNX models with one GELU spelled the way a given exporter spells it, for the fuse-gelu tests.

``Chain`` builds a graph node by node; ``swap=True`` writes every Add/Mul with its operands the other way
round, so each spelling is tested in both operand orders. The spellings follow the exporters' source:
TorchScript's and the dynamo exporter's gelu, Hugging Face ``gelu_new``/``FastGELU``, Megatron's
``bias_gelu``, TF BERT's ``x / tf.sqrt(2.0)``.
"""

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

SQRT2 = math.sqrt(2.0)
K = math.sqrt(2.0 / math.pi)


class Chain:
    def __init__(self, dtype=np.float32, shape=(3, 16), swap=False, opset=17, const_dtype=None):
        self.dtype = np.dtype(dtype)
        self.const_dtype = np.dtype(const_dtype or dtype)
        self.shape = list(shape)
        self.swap = swap
        self.opset = opset
        self.nodes, self.inits, self.inputs, self.extra_outputs = [], [], [], []
        self._n = 0
        self.x = self.input("x", self.dtype)

    def name(self, base):
        self._n += 1
        return f"{base}_{self._n}"

    def input(self, name, dtype, shape=None):
        self.inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), shape or self.shape))
        return name

    def const(self, value, dtype=None, shape=()):
        name = self.name("c")
        self.inits.append(numpy_helper.from_array(np.full(shape, value, dtype=dtype or self.const_dtype), name))
        return name

    def op(self, op, *inputs, domain=None, **attrs):
        inputs = list(inputs)
        if self.swap and op in ("Add", "Mul") and len(inputs) == 2:
            inputs.reverse()
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.name(f"n_{op}"), domain=domain, **attrs))
        return out

    def cast(self, tensor, dtype):
        return self.op("Cast", tensor, to=helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))

    def model(self, y, out_dtype=None, extra_domains=()):
        out_dtype = np.dtype(out_dtype or self.dtype)
        outputs = [helper.make_tensor_value_info(y, helper.np_dtype_to_tensor_dtype(out_dtype), self.shape)]
        outputs += [helper.make_tensor_value_info(t, 0, None) for t in self.extra_outputs]
        graph = helper.make_graph(self.nodes, "gelu", self.inputs, outputs, initializer=self.inits)
        imports = [helper.make_opsetid("", self.opset)] + [helper.make_opsetid(d, 1) for d in extra_domains]
        model = helper.make_model(graph, opset_imports=imports)
        model.ir_version = 8
        return model


# ---- erf spellings: (chain, x) -> y ---------------------------------------------------------------------
def erf_torchscript(c, x):  # torch.onnx (TorchScript) symbolic: mul(mul(x, erf(x / sqrt2) + 1), 0.5)
    e = c.op("Erf", c.op("Div", x, c.const(SQRT2)))
    return c.op("Mul", c.op("Mul", x, c.op("Add", e, c.const(1.0))), c.const(0.5))


def erf_dynamo(c, x):  # torchlib: Mul(x, Mul(0.5, Add(Erf(Div(x, sqrt2)), 1)))
    e = c.op("Erf", c.op("Div", x, c.const(SQRT2)))
    return c.op("Mul", x, c.op("Mul", c.const(0.5), c.op("Add", e, c.const(1.0))))


def erf_half_first(c, x):  # 0.5 * x * (1 + erf(x * 0.7071...)): the 0.5 applied to x first
    e = c.op("Erf", c.op("Mul", x, c.const(1.0 / SQRT2)))
    return c.op("Mul", c.op("Mul", c.const(0.5), x), c.op("Add", c.const(1.0), e))


def erf_div_two(c, x):  # (x / 2) * (1 + erf(x / sqrt2))
    e = c.op("Erf", c.op("Div", x, c.const(SQRT2)))
    return c.op("Mul", c.op("Div", x, c.const(2.0)), c.op("Add", e, c.const(1.0)))


def erf_div_two_last(c, x):  # x * (1 + erf(x / sqrt2)) / 2
    e = c.op("Erf", c.op("Div", x, c.const(SQRT2)))
    return c.op("Div", c.op("Mul", x, c.op("Add", e, c.const(1.0))), c.const(2.0))


def erf_tf_sqrt_node(c, x):  # TF BERT: cdf = 0.5 * (1 + erf(x / tf.sqrt(2.0))); y = x * cdf
    e = c.op("Erf", c.op("Div", x, c.op("Sqrt", c.const(2.0))))
    return c.op("Mul", x, c.op("Mul", c.const(0.5), c.op("Add", c.const(1.0), e)))


def erf_distributed(c, x):  # 0.5 * x + 0.5 * x * erf(x / sqrt2), as a distributing optimizer leaves it
    half_x = c.op("Mul", x, c.const(0.5))
    e = c.op("Erf", c.op("Div", x, c.const(SQRT2)))
    return c.op("Add", c.op("Mul", c.op("Mul", e, x), c.const(0.5)), half_x)


# ---- tanh spellings ---------------------------------------------------------------------------------------
def tanh_gelu_new(c, x):  # HF gelu_new / GPT-2: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * pow(x, 3))))
    inner = c.op("Add", x, c.op("Mul", c.const(0.044715), c.op("Pow", x, c.const(3.0))))
    t = c.op("Tanh", c.op("Mul", c.const(K), inner))
    return c.op("Mul", c.op("Mul", c.const(0.5), x), c.op("Add", c.const(1.0), t))


def tanh_cube_by_mul(c, x):  # x * x * x for the cube, 0.5 applied last
    cube = c.op("Mul", c.op("Mul", x, x), x)
    inner = c.op("Add", x, c.op("Mul", cube, c.const(0.044715)))
    t = c.op("Tanh", c.op("Mul", inner, c.const(K)))
    return c.op("Mul", c.op("Mul", x, c.op("Add", t, c.const(1.0))), c.const(0.5))


def tanh_megatron(c, x):  # x * 0.5 * (1 + tanh(0.79788456 * x * (1 + 0.044715 * x * x)))
    inner = c.op("Mul", c.op("Mul", c.const(0.79788456), x), c.op("Add", c.const(1.0), c.op("Mul", c.const(0.044715), c.op("Mul", x, x))))
    return c.op("Mul", c.op("Mul", x, c.const(0.5)), c.op("Add", c.const(1.0), c.op("Tanh", inner)))


def tanh_folded(c, x):  # constants folded: tanh(0.0356774 * x^3 + 0.797885 * x)
    inner = c.op("Add", c.op("Mul", c.const(0.0356774), c.op("Pow", x, c.const(3.0))), c.op("Mul", c.const(0.797885), x))
    return c.op("Mul", c.op("Mul", x, c.const(0.5)), c.op("Add", c.op("Tanh", inner), c.const(1.0)))


def tanh_dynamo_unfolded(c, x):  # torchlib: Sqrt(CastLike(Div(2, pi), x)) left unfolded
    k = c.op("Sqrt", c.op("CastLike", c.op("Div", c.const(2.0), c.const(math.pi)), x))
    inner = c.op("Add", x, c.op("Mul", c.const(0.044715), c.op("Pow", x, c.const(3, dtype=np.int64))))
    t = c.op("Tanh", c.op("Mul", k, inner))
    return c.op("Mul", x, c.op("Mul", c.const(0.5), c.op("Add", t, c.const(1.0))))


def tanh_sigmoid(c, x):  # x * sigmoid(1.5957691 * (x + 0.044715 x^3)): 0.5 (1 + tanh z) = sigmoid(2z)
    inner = c.op("Add", x, c.op("Mul", c.const(0.044715), c.op("Pow", x, c.const(3.0))))
    return c.op("Mul", x, c.op("Sigmoid", c.op("Mul", c.const(2 * K), inner)))


def erf_tf_erfc(c, x):  # TF's exact gelu 0.5 * x * erfc(-x / sqrt(2)), with erfc(z) written 1 - erf(z)
    e = c.op("Erf", c.op("Div", c.op("Neg", x), c.const(SQRT2)))
    return c.op("Mul", c.op("Mul", c.const(0.5), x), c.op("Sub", c.const(1.0), e))


def tanh_mirrored(c, x):  # 0.5 * x * (1 - tanh(-sqrt(2/pi) * (x + 0.044715 x^3))): tanh is odd
    inner = c.op("Add", x, c.op("Mul", c.const(0.044715), c.op("Pow", x, c.const(3.0))))
    t = c.op("Tanh", c.op("Mul", c.const(-K), inner))
    return c.op("Mul", c.op("Mul", x, c.op("Sub", c.const(1.0), t)), c.const(0.5))


def sigmoid_mirrored(c, x):  # x - x * sigmoid(-1.5957691 * (x + 0.044715 x^3)): sigmoid(-z) = 1 - sigmoid(z)
    inner = c.op("Add", x, c.op("Mul", c.const(0.044715), c.op("Mul", c.op("Mul", x, x), x)))
    s = c.op("Sigmoid", c.op("Mul", inner, c.const(-2 * K)))
    return c.op("Sub", x, c.op("Mul", x, s))


ERF_SPELLINGS = [
    erf_torchscript, erf_dynamo, erf_half_first, erf_div_two, erf_div_two_last, erf_tf_sqrt_node, erf_distributed,
    erf_tf_erfc,
]
TANH_SPELLINGS = [
    tanh_gelu_new, tanh_cube_by_mul, tanh_megatron, tanh_folded, tanh_dynamo_unfolded, tanh_sigmoid, tanh_mirrored,
    sigmoid_mirrored,
]


def quick_gelu(c, x):  # CLIP: x * sigmoid(1.702 x)
    return c.op("Mul", x, c.op("Sigmoid", c.op("Mul", c.const(1.702), x)))


def build(spelling, **chain_options):
    c = Chain(**chain_options)
    return c.model(spelling(c, c.x))


def with_bias(spelling, bias_shape, swap=False, bias_value=None, dtype=np.float32, shape=(3, 16)):
    """h -> Add(h, bias) -> GELU: the bias Add of a MatMul."""
    c = Chain(dtype=dtype, shape=shape, swap=swap)
    rng = np.random.default_rng(1)
    name = c.name("bias")
    value = rng.standard_normal(bias_shape).astype(dtype) if bias_value is None else bias_value
    c.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
    biased = c.op("Add", c.x, name)
    return c.model(spelling(c, biased)), name


def cast_wrapped(spelling, swap=False, shape=(3, 16)):
    """fp16 in, the GELU computed in fp32 behind a Cast, fp16 out (PyTorch autocast / fp16 exports)."""
    c = Chain(dtype=np.float16, shape=shape, swap=swap, const_dtype=np.float32)
    y = spelling(c, c.cast(c.x, np.float32))
    return c.model(c.cast(y, np.float16))


def onnx_save_roundtrip(model):
    return onnx.load_from_string(model.SerializeToString())

"""Builders for decomposed normalization chains, in every variant exporters produce (and near misses).

``build(ChainSpec(...))`` returns a shape-inferred onnx.ModelProto with input ``x`` and output ``y``.
"""

import random
from dataclasses import dataclass, replace
from typing import List, Optional, Tuple

import numpy as np
import onnx
from onnx import helper, numpy_helper

IR_VERSION = 8  # onnxruntime 1.31 reads up to IR 13; keep fixtures loadable by older runtimes too


@dataclass
class ChainSpec:
    form: str = "chain"  # chain | folded | moments | rms
    shape: Tuple = (2, 3, 16)
    axes: Tuple[int, ...] = (-1,)
    var_axes: Optional[Tuple[int, ...]] = None  # default: same as axes
    dtype: type = np.float32
    opset: int = 13
    axes_as_input: bool = False  # opset >= 18 style
    keepdims: int = 1
    square: str = "pow"  # pow | mul
    exponent: float = 2.0
    inv: str = "div"  # div | reciprocal | pow | div_one
    inv_exponent: float = -0.5
    # No exporter's default: a fuser that writes its own epsilon (onnxruntime's writes 1e-5) changes the outputs.
    eps: float = 1e-3
    eps_kind: str = "init"  # init | constant_node | input
    eps_first: bool = False
    eps_dtype: type = None
    eps_shape: Tuple = ()
    eps_after_sqrt: bool = False
    gamma: bool = True
    beta: bool = True
    gamma_shape: Optional[Tuple] = None
    beta_shape: Optional[Tuple] = None
    swap_operands: bool = False
    gamma_identity: bool = False
    beta_identity: bool = False
    duplicated_sub: bool = False
    mean_of_other: bool = False
    cast_around_pow: bool = False
    cast_exponent: bool = False
    cast_between_div_mul: bool = False
    leading_cast: bool = False  # x arrives in fp16 and is cast to fp32 first
    extra_consumer: Optional[str] = None  # role whose tensor gets an outside consumer: mean | d | var | var_eps | std | n
    export_intermediate: Optional[str] = None  # role exported as a graph output
    shuffle: bool = False
    seed: int = 0
    residual: bool = False  # x = a + b (+ bias) in front of the norm, for --skip
    residual_bias: bool = False
    residual_reused: bool = False  # the sum also feeds another node


def _onnx_type(dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


class _Builder:
    def __init__(self, spec: ChainSpec):
        self.spec = spec
        self.nodes: List[onnx.NodeProto] = []
        self.inits: List[onnx.TensorProto] = []
        self.inputs = []
        self.outputs = []
        self.rng = np.random.default_rng(spec.seed)
        self.roles = {}

    def node(self, op, inputs, name, **attrs):
        out = f"{name}_out"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def const(self, name, value):
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def scalar(self, name, value, dtype, kind="init", shape=()):
        arr = np.full(shape, value, dtype=dtype)
        if kind == "constant_node":
            self.nodes.append(
                helper.make_node("Constant", [], [name], name=f"{name}_node", value=numpy_helper.from_array(arr))
            )
            return name
        if kind == "input":
            self.inputs.append(helper.make_tensor_value_info(name, _onnx_type(dtype), list(shape)))
            return name
        return self.const(name, arr)

    def cast(self, tensor, dtype, name):
        return self.node("Cast", [tensor], name, to=_onnx_type(dtype))

    def reduce_mean(self, tensor, axes, name):
        s = self.spec
        if s.axes_as_input or s.opset >= 18:
            axes_name = self.const(f"{name}_axes", np.array(axes, dtype=np.int64))
            return self.node("ReduceMean", [tensor, axes_name], name, keepdims=s.keepdims)
        if axes is None:
            return self.node("ReduceMean", [tensor], name, keepdims=s.keepdims)
        return self.node("ReduceMean", [tensor], name, axes=list(axes), keepdims=s.keepdims)

    def binary(self, op, a, b, name):
        if self.spec.swap_operands and op in ("Add", "Mul"):
            a, b = b, a
        return self.node(op, [a, b], name)

    def square(self, t, name):
        s = self.spec
        if s.square == "mul":
            return self.node("Mul", [t, t], name)
        exp = self.scalar(f"{name}_exp", s.exponent, s.dtype if not s.cast_exponent else np.float64)
        if s.cast_exponent:
            exp = self.cast(exp, s.dtype, f"{name}_exp_cast")
        if s.cast_around_pow:
            t = self.cast(t, np.float64, f"{name}_cast_in")
            out = self.node("Pow", [t, self.cast(exp, np.float64, f"{name}_exp64")], name)
            return self.cast(out, s.dtype, f"{name}_cast_out")
        return self.node("Pow", [t, exp], name)

    def affine_shape(self, explicit):
        k = len(self.spec.axes) if self.spec.axes is not None else len(self.spec.shape)
        return explicit if explicit is not None else tuple(self.spec.shape[len(self.spec.shape) - k :])

    def inverse_std(self, var):
        s = self.spec
        eps = self.scalar("eps", s.eps, s.eps_dtype or s.dtype, s.eps_kind, s.eps_shape)
        if s.eps_dtype is not None and s.eps_dtype != s.dtype:
            eps = self.cast(eps, s.dtype, "eps_cast")
        if s.eps_after_sqrt:
            std = self.node("Sqrt", [var], "sqrt")
            return "std", self.node("Add", [std, eps], "add_eps")
        ve = self.node("Add", [eps, var] if s.eps_first else [var, eps], "add_eps")
        self.roles["var_eps"] = ve
        if s.inv == "pow":
            e = self.scalar("rsqrt_exp", s.inv_exponent, s.dtype)
            self.roles["std"] = self.node("Pow", [ve, e], "rsqrt")
            return "rstd", self.roles["std"]
        std = self.node("Sqrt", [ve], "sqrt")
        self.roles["std"] = std
        if s.inv == "div":
            return "std", std
        if s.inv == "reciprocal":
            return "rstd", self.node("Reciprocal", [std], "reciprocal")
        one = self.scalar("one", 1.0, s.dtype)
        return "rstd", self.node("Div", [one, std], "div_one")

    def affine(self, n):
        s = self.spec
        if s.cast_between_div_mul:
            n = self.cast(n, np.float16, "cast_n")
        dtype = np.float16 if s.cast_between_div_mul else s.dtype
        if s.gamma:
            g = self.const("gamma", self.rng.uniform(0.5, 1.5, self.affine_shape(s.gamma_shape)).astype(dtype))
            if s.gamma_identity:
                g = self.node("Identity", [g], "gamma_identity")
            n = self.binary("Mul", n, g, "mul_gamma")
        if s.beta:
            b = self.const("beta", self.rng.uniform(-0.5, 0.5, self.affine_shape(s.beta_shape)).astype(dtype))
            if s.beta_identity:
                b = self.node("Identity", [b], "beta_identity")
            n = self.binary("Add", n, b, "add_beta")
        return n


def build(spec: ChainSpec) -> onnx.ModelProto:
    s = spec
    b = _Builder(s)
    in_dtype = np.float16 if s.leading_cast else s.dtype
    if s.residual:
        b.inputs += [helper.make_tensor_value_info(n, _onnx_type(in_dtype), list(s.shape)) for n in ("a", "r")]
        a = "a"
        if s.residual_bias:
            a = b.node("Add", ["a", b.const("res_bias", b.rng.normal(size=s.shape[-1:]).astype(in_dtype))], "bias_add")
        x = b.node("Add", [a, "r"], "residual_add")
    else:
        b.inputs.append(helper.make_tensor_value_info("x", _onnx_type(in_dtype), list(s.shape)))
        x = "x"
    if s.leading_cast:
        x = b.cast(x, np.float32, "cast_x")
    other = None
    if s.mean_of_other:
        b.inputs.append(helper.make_tensor_value_info("z", _onnx_type(s.dtype), list(s.shape)))
        other = "z"
    axes = s.axes
    var_axes = s.var_axes if s.var_axes is not None else axes
    mean = None if s.form == "rms" else b.reduce_mean(other or x, axes, "mean")
    b.roles["mean"] = mean
    if s.form == "rms":
        var = b.reduce_mean(b.square(x, "square"), var_axes, "variance")
        kind, inv = b.inverse_std(var)
        n = b.node("Div", [x, inv], "normalize") if kind == "std" else b.binary("Mul", x, inv, "normalize")
        s_beta = s.beta
        s.beta = False
        y = b.affine(n)
        s.beta = s_beta
    elif s.form == "moments":
        ex2 = b.reduce_mean(b.square(x, "square"), var_axes, "variance")
        msq = b.node("Mul", [mean, mean], "mean_sq")
        var = b.node("Sub", [ex2, msq], "moments_sub")
        kind, inv = b.inverse_std(var)
        d = b.node("Sub", [x, mean], "center")
        n = b.node("Div", [d, inv], "normalize") if kind == "std" else b.binary("Mul", d, inv, "normalize")
        y = b.affine(n)
    elif s.form == "folded":
        d = b.node("Sub", [x, mean], "center")
        var = b.reduce_mean(b.node("Mul", [d, d], "square"), var_axes, "variance")
        _, inv = b.inverse_std(var)
        if s.gamma:
            g = b.const("gamma", b.rng.uniform(0.5, 1.5, b.affine_shape(s.gamma_shape)).astype(s.dtype))
            if s.gamma_identity:
                g = b.node("Identity", [g], "gamma_identity")
            inv = b.node("Mul", [inv, g], "batchnorm_mul")
        xk = b.node("Mul", [x, inv], "batchnorm_mul_1")
        mk = b.node("Mul", [mean, inv], "batchnorm_mul_2")
        if s.beta:
            beta = b.const("beta", b.rng.uniform(-0.5, 0.5, b.affine_shape(s.beta_shape)).astype(s.dtype))
            y = b.node("Add", [xk, b.node("Sub", [beta, mk], "batchnorm_sub")], "batchnorm_add_1")
        else:
            y = b.node("Sub", [xk, mk], "batchnorm_sub")
    else:
        d = b.node("Sub", [x, mean], "center")
        b.roles["d"] = d
        d_num = b.node("Sub", [x, mean], "center_twin") if s.duplicated_sub else d
        var = b.reduce_mean(b.square(d, "square"), var_axes, "variance")
        b.roles["var"] = var
        kind, inv = b.inverse_std(var)
        n = b.node("Div", [d_num, inv], "normalize") if kind == "std" else b.binary("Mul", d_num, inv, "normalize")
        b.roles["n"] = n
        y = b.affine(n)
    if s.form in ("chain", "moments") and s.cast_between_div_mul:
        y = b.cast(y, s.dtype, "cast_y")
    b.nodes.append(helper.make_node("Identity", [y], ["y"], name="output"))
    b.outputs.append(helper.make_tensor_value_info("y", _onnx_type(s.dtype), None))
    if s.residual_reused:
        b.nodes.append(helper.make_node("Neg", [x], ["sum_user"], name="sum_user"))
        b.outputs.append(helper.make_tensor_value_info("sum_user", _onnx_type(in_dtype), None))
    if s.extra_consumer:
        t = b.roles[s.extra_consumer]
        b.nodes.append(helper.make_node("Neg", [t], ["extra"], name="extra_consumer"))
        b.outputs.append(helper.make_tensor_value_info("extra", _onnx_type(s.dtype), None))
    if s.export_intermediate:
        b.outputs.append(helper.make_tensor_value_info(b.roles[s.export_intermediate], _onnx_type(s.dtype), None))
    graph = helper.make_graph(b.nodes, "chain", b.inputs, b.outputs, b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", s.opset)], ir_version=IR_VERSION)
    model = onnx.shape_inference.infer_shapes(model)
    if s.shuffle:
        # Shape inference needs sorted nodes; the pass must cope with any order, so shuffle afterwards.
        nodes = list(model.graph.node)
        random.Random(s.seed).shuffle(nodes)
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    return model


def variant(**changes) -> ChainSpec:
    return replace(ChainSpec(), **changes)

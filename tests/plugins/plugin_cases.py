"""Inputs, fields and float64 torch references for the plugins, shared by the GPU tests and the benchmark."""

from dataclasses import dataclass, field
from typing import Dict, List

import torch
import torch.nn.functional as F

PLUGINS = ("LayerNorm", "SkipLayerNorm", "RMSNorm", "BiasGelu")


@dataclass
class Case:
    plugin: str
    rows: int
    hidden: int
    dtype: torch.dtype
    param_dtype: torch.dtype = None  # None: same as dtype
    offsets: Dict[str, int] = field(default_factory=dict)  # tensor name -> element offset (misaligned views)
    epsilon: float = 1e-5
    approximate: str = "none"
    output_sum: bool = True  # SkipLayerNorm: write the residual stream too
    bias: bool = True  # SkipLayerNorm: add a bias to x + skip (has_bias)

    def fields(self):
        if self.plugin == "BiasGelu":
            return {"approximate": self.approximate}
        fields = {"epsilon": float(self.epsilon), "axis": -1}
        if self.plugin == "SkipLayerNorm":
            fields.update(has_beta=1, has_bias=int(self.bias), output_sum=int(self.output_sum))
        return fields

    def input_names(self) -> List[str]:
        return {
            "LayerNorm": ["input", "gamma", "beta"],
            "SkipLayerNorm": ["input", "skip", "gamma", "beta"] + (["bias"] if self.bias else []),
            "RMSNorm": ["input", "gamma"],
            "BiasGelu": ["input", "bias"],
        }[self.plugin]

    def output_names(self) -> List[str]:
        return ["output", "sum"] if self.plugin == "SkipLayerNorm" and self.output_sum else ["output"]


def _view(shape, dtype, offset, device):
    numel = 1
    for d in shape:
        numel *= d
    buffer = torch.empty(numel + offset, dtype=dtype, device=device)
    return buffer[offset : offset + numel].view(shape)


def make_tensors(case: Case, device="cuda", generator=None):
    """(inputs, outputs): random inputs (fresh each call), outputs poisoned with NaN so unwritten elements show."""
    pdtype = case.param_dtype or case.dtype
    inputs = []
    for name in case.input_names():
        is_param = name in ("gamma", "beta", "bias")
        shape = (case.hidden,) if is_param else (case.rows, case.hidden)
        t = _view(shape, pdtype if is_param else case.dtype, case.offsets.get(name, 0), device)
        if name == "gamma":
            t.copy_(1.0 + 0.5 * torch.randn(shape, device=device, generator=generator))
        else:
            t.copy_(torch.randn(shape, device=device, generator=generator))
        inputs.append(t)
    outputs = []
    for name in case.output_names():
        t = _view((case.rows, case.hidden), case.dtype, case.offsets.get(name, 0), device)
        t.fill_(float("nan"))
        outputs.append(t)
    return inputs, outputs


def reference(case: Case, inputs) -> List[torch.Tensor]:
    """float64 results of what the plugin computes, one per output."""
    x = [t.double() for t in inputs]
    h = case.hidden
    if case.plugin == "LayerNorm":
        return [F.layer_norm(x[0], (h,), x[1], x[2], case.epsilon)]
    if case.plugin == "SkipLayerNorm":
        s = x[0] + x[1] + x[4] if case.bias else x[0] + x[1]
        y = F.layer_norm(s, (h,), x[2], x[3], case.epsilon)
        return [y, s] if case.output_sum else [y]
    if case.plugin == "RMSNorm":
        return [x[0] * torch.rsqrt(x[0].pow(2).mean(-1, keepdim=True) + case.epsilon) * x[1]]
    return [F.gelu(x[0] + x[1], approximate=case.approximate)]


def torch_eager(case: Case, inputs):
    """What a user would otherwise run in PyTorch for the same op (the benchmark's baseline)."""
    h = case.hidden
    if case.plugin == "LayerNorm":
        return F.layer_norm(inputs[0], (h,), inputs[1], inputs[2], case.epsilon)
    if case.plugin == "SkipLayerNorm":
        s = inputs[0] + inputs[1] + inputs[4] if case.bias else inputs[0] + inputs[1]
        y = F.layer_norm(s, (h,), inputs[2], inputs[3], case.epsilon)
        return (y, s) if case.output_sum else y
    if case.plugin == "RMSNorm":
        return F.rms_norm(inputs[0], (h,), inputs[1], case.epsilon)
    return F.gelu(inputs[0] + inputs[1], approximate=case.approximate)


def tolerance(dtype):
    """(atol, rtol) for one rounding to `dtype` of an O(1) result computed in fp32."""
    return {torch.float32: (1e-4, 1e-4), torch.float16: (4e-3, 2e-3), torch.bfloat16: (3e-2, 1.6e-2)}[dtype]


def min_bytes(case: Case) -> int:
    """The fewest bytes the op must move: every input read once, every output written once."""
    elem = torch.tensor([], dtype=case.dtype).element_size()
    pelem = torch.tensor([], dtype=case.param_dtype or case.dtype).element_size()
    n = case.rows * case.hidden
    data = sum(1 for name in case.input_names() if name in ("input", "skip")) + len(case.output_names())
    params = sum(1 for name in case.input_names() if name in ("gamma", "beta", "bias"))
    return data * n * elem + params * case.hidden * pelem

"""The cost model: extra FLOPs and extra bytes moved by a padding plan, relative to the work it touches.

Dims that are not static (batch, sequence) count as ``dynamic_dim`` (1 unless the caller says otherwise), so
figures are per batch item / per token. The overhead of a plan is the larger of its FLOP and byte ratios.
"""

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from polygraphy_ext.passes.dim_alignment.candidates import WeightedOp
from polygraphy_ext.passes.dim_alignment.symbolic import ShapeTable


@dataclass
class Cost:
    flops: int = 0
    bytes: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.flops + other.flops, self.bytes + other.bytes)


def overhead_pct(base: Cost, extra: Cost) -> float:
    ratios = [extra.flops / base.flops if base.flops else 0.0, extra.bytes / base.bytes if base.bytes else 0.0]
    return 100.0 * max(ratios)


class CostModel:
    def __init__(self, shapes: ShapeTable, dynamic_dim: int = 1):
        self._shapes = shapes
        self._dynamic_dim = dynamic_dim

    def numel(self, tensor) -> int:
        return self._shapes.numel(tensor, self._dynamic_dim) or 0

    def nbytes(self, tensor) -> int:
        dtype = getattr(tensor, "dtype", None)
        try:
            itemsize = np.dtype(dtype).itemsize if dtype is not None else 4
        except TypeError:
            itemsize = 4
        return self.numel(tensor) * itemsize

    def gemm(self, wop: WeightedOp) -> Cost:
        """Multiply-adds x2 of the GEMM/conv, and the bytes of its weight, input and output."""
        kernel = int(np.prod(wop.weight.shape[2:], dtype=np.int64)) if wop.node.op in ("Conv", "ConvTranspose") else 1
        if wop.node.op == "ConvTranspose":
            flops = 2 * self.numel(wop.data) * (wop.out_features // wop.groups) * kernel
        else:
            flops = 2 * self.numel(wop.output) * (wop.in_features // wop.groups) * kernel
        return Cost(flops, self.nbytes(wop.weight) + self.nbytes(wop.data) + self.nbytes(wop.output))

    def elementwise(self, tensors: Iterable) -> Cost:
        """One op per element written, each tensor written once and read once."""
        tensors = list(tensors)
        return Cost(sum(self.numel(t) for t in tensors), 2 * sum(self.nbytes(t) for t in tensors))

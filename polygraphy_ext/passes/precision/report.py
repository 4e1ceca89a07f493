"""What to-fp16 decided, as data (``to_dict`` -> --report JSON), as a human summary, and in the formats of
older tools: TensorRT 10 weak typing (``--layer-precisions``) and ModelOpt AutoCast (``nodes_to_exclude``)."""

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

GEMM_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose", "MatMulInteger", "Einsum")


@dataclass
class Fp32Node:
    name: str
    op: str
    reason: str  # overflow | underflow | error | semantics | request | island (copies joined to their neighbours)
    detail: str
    flops: int = 0


@dataclass
class Island:
    nodes: List[str]
    reasons: Dict[str, int]  # reason kind -> number of its nodes
    flops: int


@dataclass
class PrecisionReport:
    dtype: str
    atol: float
    rtol: float
    range_margin: float
    keep_io_types: bool
    default_data: bool
    num_batches: int
    num_nodes: int = 0  # nodes with an FP32 input or output in the original model
    low_nodes: List[str] = field(default_factory=list)
    fp32_nodes: List[Fp32Node] = field(default_factory=list)
    islands: List[Island] = field(default_factory=list)
    total_gemm_flops: int = 0
    num_casts: int = 0
    final_errors: List[dict] = field(default_factory=list)
    trials: int = 0
    seconds: Dict[str, float] = field(default_factory=dict)
    hints: List[str] = field(default_factory=list)

    @property
    def fp32_gemm_flops(self) -> int:
        return sum(n.flops for n in self.fp32_nodes)

    @property
    def low_gemm_share(self) -> Optional[float]:
        if not self.total_gemm_flops:
            return None
        return 1.0 - self.fp32_gemm_flops / self.total_gemm_flops

    def layer_precisions(self) -> Dict[str, str]:
        """TensorRT 10 weak typing: node name -> precision (TensorRT names layers after ONNX nodes)."""
        out = {name: self.dtype_name() for name in self.low_nodes}
        out.update({n.name: "float32" for n in self.fp32_nodes})
        return out

    def dtype_name(self) -> str:
        return {"fp16": "float16", "bf16": "bfloat16"}[self.dtype]

    def nodes_to_exclude(self) -> List[str]:
        """ModelOpt AutoCast ``nodes_to_exclude``: every node this tool kept FP32. AutoCast reads regular
        expressions and ``re.match``es them (a prefix match): each name is escaped and anchored at its end, so
        ``Add`` does not also exclude ``Add_1``."""
        return [re.escape(n.name) + "$" for n in self.fp32_nodes]

    def to_dict(self) -> dict:
        share = self.low_gemm_share
        return {
            "dtype": self.dtype,
            "atol": self.atol,
            "rtol": self.rtol,
            "range_margin": self.range_margin,
            "keep_io_types": self.keep_io_types,
            "data": "generated (Polygraphy's default data loader)" if self.default_data else "user-provided",
            "num_batches": self.num_batches,
            "num_nodes": self.num_nodes,
            "num_low_nodes": len(self.low_nodes),
            "num_fp32_nodes": len(self.fp32_nodes),
            "gemm_flops_total": self.total_gemm_flops,
            "gemm_flops_low_share": share,
            "num_casts": self.num_casts,
            "final_errors": self.final_errors,
            "trials": self.trials,
            "seconds": self.seconds,
            "hints": self.hints,
            "islands": [asdict(i) for i in self.islands],
            "fp32_nodes": [asdict(n) for n in self.fp32_nodes],
            "layer_precisions": self.layer_precisions(),
            "modelopt_nodes_to_exclude": self.nodes_to_exclude(),
        }

    def summary(self) -> str:
        share = self.low_gemm_share
        lines = [
            f"to-{self.dtype}: {len(self.low_nodes)} of {self.num_nodes} node(s) in {self.dtype}, "
            f"{len(self.fp32_nodes)} kept FP32 in {len(self.islands)} island(s), {self.num_casts} Cast(s)"
            + (f"; {share:.1%} of MatMul/Gemm/Conv FLOPs in {self.dtype}" if share is not None else "")
        ]
        for kind, n in Counter(node.reason for node in self.fp32_nodes).most_common():
            examples = [f"{node.name} ({node.detail})" for node in self.fp32_nodes if node.reason == kind][:3]
            lines.append(f"  FP32 for {kind} ({n}): {'; '.join(examples)}")
        if self.final_errors:
            worst = max(self.final_errors, key=lambda e: e["max_abs_err"])
            lines.append(
                f"  worst output error (written model, 16-bit tensors rounded): '{worst['output']}' max abs {worst['max_abs_err']:.3g}, "
                f"max rel {worst['max_rel_err']:.3g} (atol={self.atol:g}, rtol={self.rtol:g})"
            )
        lines.extend(f"  hint: {hint}" for hint in self.hints)
        return "\n".join(lines)

"""Existing ONNX LayerNormalization / RMSNormalization nodes (PyTorch's dynamo exporter writes them).

With ``--target native`` they are reported as already native and left alone; with ``--target plugin`` they are
candidates like a decomposed chain: turned into the plugin node (and, with ``--skip``, folded with the residual
Add in front of them into SkipLayerNorm).
"""

import numpy as np
import onnx_graphsurgeon as gs

from polygraphy_ext.passes.layernorm_fusion.matching import (
    DEFAULT_DOMAINS,
    FLOAT_DTYPES,
    GraphView,
    Reject,
    is_empty,
)
from polygraphy_ext.passes.layernorm_fusion.patterns import NormMatch, fitted_dims
from polygraphy_ext.passes.layernorm_fusion.stages import PatternBuilder, fit_affine, tensor_affine

NATIVE_KINDS = {"LayerNormalization": "LayerNorm", "RMSNormalization": "RMSNorm"}
NATIVE_PATTERNS = {"LayerNormalization": "native-layernorm", "RMSNormalization": "native-rmsnorm"}

_DEFAULT_EPSILON = 1e-5  # both ops' schema default


def is_native_norm(node: gs.Node) -> bool:
    return node.op in NATIVE_KINDS and (node.domain or "") in DEFAULT_DOMAINS and len(node.inputs) >= 1


def _param(b: PatternBuilder, tensor, x, k: int, role: str):
    value = b.view.constant(tensor)
    if value is not None:
        return fit_affine(b, value, x, k, role)
    fitted = tensor_affine(b, tensor, x, k, role)
    if fitted is None:
        raise Reject(f"{role} {tensor.name} is not shown to have exactly the normalized shape (run shape inference)")
    return fitted


def match_native(view: GraphView, node: gs.Node) -> NormMatch:
    """The node as a match the plugin emitter can replace; ``Reject`` if the plugin cannot compute it."""
    kind = NATIVE_KINDS[node.op]
    x = node.inputs[0]
    for index, tensor in enumerate(node.outputs[1:], start=1):
        if not is_empty(tensor) and (tensor.outputs or view.is_graph_output(tensor)):
            name = ("Mean", "InvStdDev")[index - 1] if index <= 2 else f"#{index}"
            raise Reject(f"its {name} output ({tensor.name}) is used, and the {kind} plugin has no such output")
    if len(node.inputs) < 2 or is_empty(node.inputs[1]):
        raise Reject(f"{node.op} {node.name} has no scale input")
    axis = int(node.attrs.get("axis", -1))
    rank = view.rank(x)
    if axis >= 0:
        if rank is None:
            raise Reject(f"axis {axis} is positive and the input rank is unknown (run shape inference)")
        k = rank - axis
    else:
        k = -axis
    if k <= 0 or (rank is not None and k > rank):
        raise Reject(f"axis {axis} is out of range for a rank-{rank} input")
    compute = view.dtype(x)
    if compute is None or compute not in FLOAT_DTYPES:
        raise Reject(f"the input {x.name} has dtype {compute}, not a known float type")
    b = PatternBuilder(view, node)
    b.add(node)
    gamma = _param(b, node.inputs[1], x, k, "scale")
    beta = None
    if kind == "LayerNorm" and len(node.inputs) > 2 and not is_empty(node.inputs[2]):
        beta = _param(b, node.inputs[2], x, k, "bias")
    stash = int(node.attrs.get("stash_type", 1))
    stats = np.dtype(np.float32) if stash == 1 else compute
    match = NormMatch(
        NATIVE_PATTERNS[node.op], kind, node, x, node.outputs[0], k,
        float(node.attrs.get("epsilon", _DEFAULT_EPSILON)), gamma, beta, b.nodes, compute, compute, b.notes,
    )
    match.dims = b.normalized_dims(x, k) or fitted_dims(gamma, beta)
    match.proofs, match.stats_dtype = b.proofs, stats
    return match

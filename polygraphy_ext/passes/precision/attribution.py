"""Which low-precision nodes cause the output error: one emulated run with every tensor fetched, compared
with the FP32 reference tensor by tensor; a node is blamed for the error its outputs add to its inputs'."""

from typing import Dict, List, Set

import numpy as np

from polygraphy_ext.passes.precision.model_index import ModelIndex


def _scaled_error(reference: np.ndarray, candidate: np.ndarray) -> float:
    """max |candidate - reference| over max |reference|: error relative to the tensor's own scale."""
    if reference.size == 0 or reference.shape != candidate.shape:
        return 0.0
    ref = reference.astype(np.float64)
    cand = candidate.astype(np.float64)
    finite = np.isfinite(ref)
    if np.any(finite & ~np.isfinite(cand)):
        return float("inf")
    if not finite.any():
        return 0.0
    scale = float(np.max(np.abs(ref[finite])))
    diff = float(np.max(np.abs(cand[finite] - ref[finite])))
    return diff / max(scale, 1e-30)


def tensor_errors(index: ModelIndex, reference_session, emulator, feeds, low_nodes: Set[str]) -> Dict[str, float]:
    names = sorted(name for name in index.float_tensors if name in index.producer)
    errors: Dict[str, float] = {}
    chunks = emulator.tensors(feeds, low_nodes, names)
    for emulated in chunks:
        reference = reference_session.run(list(emulated), feeds)
        for name, value in emulated.items():
            errors[name] = _scaled_error(reference[name], value)
    return errors


def rank_nodes(index: ModelIndex, errors: Dict[str, float], low_nodes: Set[str]) -> List[tuple]:
    """[(score, node name)] of ``low_nodes``, most to blame first: max error of its outputs minus max error of
    its non-constant inputs (rounding of its weights is its own). Ties: earlier nodes first (their error
    reaches more of the graph)."""
    ranked = []
    for name in low_nodes:
        info = index.by_name[name]
        out_err = max((errors.get(t, 0.0) for t in info.float_outputs()), default=0.0)
        in_err = max(
            (errors.get(t, 0.0) for t in info.float_inputs() if t not in index.initializers), default=0.0
        )
        if out_err == float("inf"):
            score = float("inf") if in_err != float("inf") else 0.0
        else:
            score = out_err - in_err
        ranked.append((score, -info.index, name))
    ranked.sort(reverse=True)
    return [(score, name) for score, _, name in ranked]

"""Find the fewest nodes to keep FP32 beyond the overflowing ones: rank the low nodes by the error they add
(attribution.py), bisect on how many of the worst to keep FP32, then hand back those not needed.

Every trial is one run of the emulation session (emulate.py); no model is rebuilt between trials.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Set

from polygraphy_ext.passes.precision.attribution import rank_nodes, tensor_errors
from polygraphy_ext.passes.precision.tolerance import Verdict, judge

# Nodes handed back per trial when pruning the bisection's choice: at most this many trials.
_PRUNE_GROUPS = 8
# Below this many, the pruned choice is pruned once more node by node.
_PRUNE_SINGLES = 24
_ROUNDS = 4


class ToleranceError(Exception):
    pass


@dataclass
class SearchResult:
    low_nodes: Set[str]
    blamed: Dict[str, float] = field(default_factory=dict)  # node -> its error score when it was moved
    verdict: Verdict = None


def evaluate(emulator, batches, references, low_nodes, atol, rtol) -> Verdict:
    outputs = [emulator.outputs(feeds, low_nodes) for feeds in batches]
    return judge(references, outputs, atol, rtol)


def search(index, emulator, reference_session, batches, references, low_nodes: Set[str], atol, rtol) -> SearchResult:
    low_nodes = set(low_nodes)
    verdict = evaluate(emulator, batches, references, low_nodes, atol, rtol)
    if verdict.ok:
        return SearchResult(low_nodes, {}, verdict)
    baseline = evaluate(emulator, batches, references, set(), atol, rtol)
    if not baseline.ok:
        raise ToleranceError(
            f"the tolerance cannot be met even with every convertible node in FP32: {baseline.worst.describe()} "
            f"(atol={atol:g}, rtol={rtol:g})"
        )
    blamed: Dict[str, float] = {}
    # Attribution on the batch where the error is worst; re-ranked after each round, since moving the worst
    # nodes changes what the rest inherit.
    for round_index in range(_ROUNDS):
        worst_batch = _worst_batch(emulator, batches, references, low_nodes, atol, rtol)
        errors = tensor_errors(index, reference_session, emulator, batches[worst_batch], low_nodes)
        ranked = rank_nodes(index, errors, low_nodes)
        scores = dict((name, score) for score, name in ranked)
        # A node that adds no error (a copy of an already rounded tensor) is never worth an FP32 island;
        # if every node that does add error in FP32 is not enough, the next round re-attributes.
        last_round = round_index == _ROUNDS - 1
        names = [name for score, name in ranked if score > 0 and not last_round] or [name for _, name in ranked]
        groups = _with_producers(index, names, low_nodes)
        everything = set().union(*groups) if groups else set()
        if not last_round and not evaluate(emulator, batches, references, low_nodes - everything, atol, rtol).ok:
            blamed.update((name, scores.get(name, 0.0)) for name in everything)
            low_nodes -= everything
            continue
        lo, hi = 1, len(groups)
        # Smallest k whose top-k groups in FP32 meet the tolerance (all of them do: checked above, or, in the
        # last round, every low node in FP32 is the baseline).
        while lo < hi:
            mid = (lo + hi) // 2
            if evaluate(emulator, batches, references, low_nodes - set().union(*groups[:mid]), atol, rtol).ok:
                hi = mid
            else:
                lo = mid + 1
        chosen = [name for group in groups[:hi] for name in group]
        chosen = _prune(emulator, batches, references, low_nodes, chosen, atol, rtol)
        for name in chosen:
            blamed[name] = scores.get(name, 0.0)
        low_nodes -= set(chosen)
        verdict = evaluate(emulator, batches, references, low_nodes, atol, rtol)
        if verdict.ok:
            return SearchResult(low_nodes, blamed, verdict)
    raise ToleranceError(f"no FP32 island meets the tolerance: {verdict.worst.describe()}")


def _with_producers(index, names: List[str], low_nodes: Set[str]) -> List[List[str]]:
    """One group per blamed node: the node and the low nodes writing its activation inputs, not yet taken.

    A node that amplifies error (x - mean(x) on rows with a large mean) is blamed, but in FP32 it still reads
    its inputs rounded to 16 bits; only with their writers in FP32 does the amplified error go away.
    """
    taken: Set[str] = set()
    groups = []
    for name in names:
        info = index.by_name[name]
        group = [name] if name not in taken else []
        for tensor in info.float_inputs():
            producer = index.producer.get(tensor)
            if producer is None:
                continue
            writer = index.nodes[producer[0]].name
            if writer in low_nodes and writer not in taken and writer not in group:
                group.append(writer)
        if group:
            taken.update(group)
            groups.append(group)
    return groups


def _worst_batch(emulator, batches, references, low_nodes, atol, rtol) -> int:
    if len(batches) == 1:
        return 0
    scores = []
    for feeds, reference in zip(batches, references):
        verdict = judge([reference], [emulator.outputs(feeds, low_nodes)], atol, rtol)
        worst = verdict.worst
        scores.append((worst.nonfinite, worst.max_abs_err) if worst else (0, 0.0))
    return max(range(len(batches)), key=lambda i: scores[i])


def _prune(emulator, batches, references, low_nodes, chosen: List[str], atol, rtol) -> List[str]:
    """Hand nodes of ``chosen`` back to the low type, least blamed first, in groups, while the tolerance holds."""
    kept = list(chosen)
    if len(kept) <= 1:
        return kept
    group = max(1, len(kept) // _PRUNE_GROUPS)
    kept = _hand_back(emulator, batches, references, low_nodes, kept, group, atol, rtol)
    if group > 1 and len(kept) <= _PRUNE_SINGLES:
        kept = _hand_back(emulator, batches, references, low_nodes, kept, 1, atol, rtol)
    return kept


def _hand_back(emulator, batches, references, low_nodes, chosen, group, atol, rtol):
    """The most blamed node always stays FP32 (the bisection showed that the rest alone is not enough)."""
    kept = list(chosen)
    for end in range(len(chosen), 1, -group):
        trial_back = set(chosen[max(1, end - group) : end])
        remaining = [n for n in kept if n not in trial_back]
        if len(remaining) < len(kept) and evaluate(emulator, batches, references, low_nodes - set(remaining), atol, rtol).ok:
            kept = remaining
    return kept

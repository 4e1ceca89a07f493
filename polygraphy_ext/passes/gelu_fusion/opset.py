"""The one place fuse-gelu changes the default-domain opset: ONNX Gelu needs opset 20.

Every node that stays is carried to opset 20 exactly by the shared upgrade (``passes.opset_upgrade``), or
the run stops with one line naming what has no exact form there; the graph is then unchanged.
"""

from typing import Dict, Iterable

import onnx_graphsurgeon as gs

from polygraphy_ext.passes.opset_upgrade import UpgradePlan, default_opset, plan_default_opset_upgrade

GELU_OPSET = 20


class OpsetError(ValueError):
    """The opset the fused nodes need cannot be reached exactly."""


def current_opset(graph: gs.Graph) -> int:
    return default_opset(graph)


def plan_raise(graph: gs.Graph, leaving: Dict[int, gs.Node], fused_inputs: Iterable) -> UpgradePlan:
    """The upgrade to opset 20 of everything but the replaced chains; OpsetError (graph unchanged) if refused.

    Nodes that only fed the replaced chains (constant subexpressions, Casts) go with them and are not planned.
    """
    plan = plan_default_opset_upgrade(graph, GELU_OPSET, leaving=_with_dead_feeders(graph, leaving, fused_inputs))
    if not plan.ok:
        raise OpsetError(
            f"native Gelu needs opset {GELU_OPSET} but {len(plan.refusals)} node(s) of opset {current_opset(graph)} "
            f"have no exact form there: {plan.describe_refusals()}. Use --target plugin, or --no-raise-opset to "
            "leave the model as it is"
        )
    return plan


def _with_dead_feeders(graph: gs.Graph, replaced: Dict[int, gs.Node], fused_inputs) -> Dict[int, gs.Node]:
    """``replaced`` plus the nodes whose every output only feeds it (cleanup drops them too); what produces
    a fused node's input stays, of course."""
    kept = {id(t) for body in [graph, *graph.subgraphs(recursive=True)] for t in body.outputs}
    kept.update(id(t) for t in fused_inputs)
    dead = dict(replaced)
    frontier = list(replaced.values())
    while frontier:
        node = frontier.pop()
        for tensor in node.inputs:
            producer = tensor.inputs[0] if len(tensor.inputs) else None
            if producer is None or id(producer) in dead:
                continue
            if all(
                id(out) not in kept and out.outputs and all(id(c) in dead for c in out.outputs)
                for out in producer.outputs
            ):
                dead[id(producer)] = producer
                frontier.append(producer)
    return dead

"""The one place fuse-gelu decides the default-domain opset: ONNX Gelu needs opset 20.

Until the shared exact opset upgrade lands, this uses fuse-ln's safety check: the raise happens only when
no node that stays changes meaning between the two versions, else the run stops with the blocking nodes.
"""

from typing import Dict

import onnx_graphsurgeon as gs

from polygraphy_ext.passes.layernorm_fusion.opset import (
    default_opset,
    describe_blockers,
    raise_blockers,
    set_default_opset,
)


class OpsetError(ValueError):
    """The opset the fused nodes need cannot be reached exactly."""


def current_opset(graph: gs.Graph) -> int:
    return default_opset(graph)


def raise_opset_to(graph: gs.Graph, needed: int, leaving: Dict[int, gs.Node]) -> None:
    """Raise ``graph``'s default-domain opset to ``needed``; every node not in ``leaving`` must keep its meaning.

    Raises OpsetError (one line naming the blocking nodes) and leaves the graph untouched when that is unsafe.
    """
    current = default_opset(graph)
    blockers = raise_blockers(graph, current, needed, leaving)
    if blockers:
        raise OpsetError(
            f"native Gelu needs opset {needed} but raising the model's opset {current} is unsafe for "
            f"{len(blockers)} node(s): {describe_blockers(blockers)}. Use --target plugin, or --no-raise-opset "
            f"to leave the model as it is"
        )
    set_default_opset(graph, needed)

"""Exact default-domain opset upgrade of an onnx-graphsurgeon graph (no CLI; used by fuse-ln and fuse-gelu).

    from polygraphy_ext.passes.opset_upgrade import OpsetUpgradeError, upgrade_default_opset

    report = upgrade_default_opset(graph, 20)          # in place; raises OpsetUpgradeError, graph unchanged
    print(report.summary())                            # "opset 11 -> 20: rewrote 9 node(s) (Softmax 1, ...)"

    plan = plan_default_opset_upgrade(graph, 17, leaving={id(n) for n in nodes_about_to_go})
    if not plan.ok:
        raise MyError(plan.describe_refusals())       # "Scan (loop): Scan-8's batch axis ...; OneHot (...): ..."
    report = plan.apply()

Every node of the default domain, in the graph, in its If/Loop/Scan bodies (recursively) and in its model-local
functions, is carried to the target opset so that it computes exactly what it computed before:

- a definition change that cannot alter an existing node (added types, negative axes, new attributes or
  trailing optional inputs whose defaults are the old behaviour) needs nothing; a narrowed type list refuses
  only the nodes that use a dropped type;
- attributes that became inputs (Unsqueeze/Squeeze/ReduceSum/Split at 13, other Reduce* at 18, Slice/TopK at
  10, Pad/Clip at 11, Dropout ratio at 12, DFT axis at 20) are moved to constant inputs;
- changed meanings are rewritten: Softmax/LogSoftmax/Hardmax below 13 (2-D coercion at ``axis``) keep their
  node with the axis stated when the trailing dims are 1, else are wrapped in Flatten -> op(axis=1) -> Reshape
  back to Shape(input); Upsample and Resize-10 become Resize with asymmetric coordinates and the old nearest
  rounding; Scatter becomes ScatterElements; GridSample modes are renamed; RoiAlign states its old coordinate
  mode; OneHot maps negative indices out of range; GroupNormalization-18 repeats its scale/bias per channel;
  BatchNormalization drops ``spatial=1`` and unused training outputs; Dropout's old float mask is cast back;
- what has no exact form (Scan-8, BatchNormalization spatial=0, SAME auto_pad with strides across opset 11/12,
  nearest Upsample with non-constant scales, ...) is refused: ``OpsetUpgradeError`` / ``plan.refusals`` name
  op, node and reason in one line, and nothing is changed.

``history.STEPS`` classifies every ``(op, since_version)`` from opset 8 to 23; a step it does not list (a newer
ONNX) is refused as not covered. Models below opset 7 are refused. See docs/opset-upgrade.md.
"""

from polygraphy_ext.passes.opset_upgrade.upgrade import (
    OpsetUpgradeError,
    Refusal,
    RewrittenNode,
    UpgradePlan,
    UpgradeReport,
    default_opset,
    plan_default_opset_upgrade,
    set_default_opset,
    upgrade_default_opset,
)

__all__ = [
    "OpsetUpgradeError",
    "Refusal",
    "RewrittenNode",
    "UpgradePlan",
    "UpgradeReport",
    "default_opset",
    "plan_default_opset_upgrade",
    "set_default_opset",
    "upgrade_default_opset",
]

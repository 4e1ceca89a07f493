"""Every default-domain operator change from opset 8 to 23 is classified, and each classification is checkable."""

import onnx.defs
import pytest

from polygraphy_ext.passes.opset_upgrade.history import LAST_COVERED, STEPS, TYPES, Kept, Refused, Rewritten
from polygraphy_ext.passes.opset_upgrade.rewrites import REWRITERS
from polygraphy_ext.passes.opset_upgrade.upgrade import op_steps


def _changes(first=8, last=LAST_COVERED):
    """(op, since_version) of every new definition of an op that existed before it, per onnx.defs."""
    versions = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain == "":
            versions.setdefault(schema.name, set()).add(schema.since_version)
    return {(op, v) for op, vs in versions.items() for v in vs if first <= v <= last and min(vs) < v}


def test_every_change_from_opset_8_to_23_is_classified():
    missing = sorted(_changes() - set(STEPS))
    assert not missing, f"unclassified operator changes: {missing}"
    assert not sorted(set(STEPS) - _changes()), "classified steps that onnx.defs does not have"


def test_the_range_covers_7_to_20_at_least():
    assert {("Softmax", 13), ("Upsample", 9), ("ReduceMean", 18), ("GridSample", 20), ("DFT", 20)} <= set(STEPS)
    assert len(_changes(8, 20)) > 200


def test_every_rewritten_op_has_a_rewriter():
    assert {op for (op, _), step in STEPS.items() if isinstance(step, Rewritten)} <= set(REWRITERS)


def _formal_options(formals):
    return [(f.option, f.is_homogeneous) for f in formals]


def _attributes(schema):
    return {
        name: (a.required, a.type, a.default_value.SerializeToString()) for name, a in schema.attributes.items()
    }


@pytest.mark.parametrize("op, version", sorted(k for k, s in STEPS.items() if isinstance(s, Kept) and s.why == TYPES))
def test_type_only_steps_change_nothing_but_types(op, version):
    new = onnx.defs.get_schema(op, version, "")
    old = onnx.defs.get_schema(op, version - 1, "")
    assert _formal_options(old.inputs) == _formal_options(new.inputs)
    assert _formal_options(old.outputs) == _formal_options(new.outputs)
    assert _attributes(old) == _attributes(new)


def test_steps_newer_than_the_table_are_refused_as_not_covered():
    steps = dict(op_steps("Cast", 23, 24))
    assert isinstance(steps[24], Refused) and "not covered" in steps[24].why


def test_deprecated_ops_are_rewritten_away():
    for op, version in (("Upsample", 10), ("Scatter", 11)):
        assert onnx.defs.get_schema(op, version, "").deprecated
        assert isinstance(STEPS[(op, version)], Rewritten)

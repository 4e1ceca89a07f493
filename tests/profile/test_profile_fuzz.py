"""Arbitrary input never escapes as anything but ProfileError (which the CLI prints as one line).

Hypothesis writes random JSON-ish documents, near-trtexec records with wrong types or values in any field,
and random bytes; every one must either analyse, render and diff cleanly or raise ProfileError.
"""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polygraphy_ext.profile import ProfileError, analyze_profile, diff_profiles, group
from polygraphy_ext.profile.render import render_diff, render_ranking

_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
_names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
_field_values = st.one_of(_scalars, st.floats(min_value=0, max_value=1e6), st.lists(_scalars, max_size=2))
_records = st.fixed_dictionaries(
    {"name": st.one_of(_names, _scalars)},
    optional={"timeMs": _field_values, "averageMs": _field_values, "medianMs": _field_values, "percentage": _field_values},
)
_profiles = st.tuples(
    st.one_of(st.none(), st.fixed_dictionaries({"count": _field_values})),
    st.lists(_records, min_size=0, max_size=6),
).map(lambda parts: ([parts[0]] if parts[0] is not None else []) + parts[1])
_layer_infos = st.one_of(
    _json,
    st.fixed_dictionaries({"Layers": st.lists(st.one_of(_names, _json), max_size=4)}),
    st.fixed_dictionaries(
        {
            "Layers": st.lists(
                st.fixed_dictionaries(
                    {"Name": st.sampled_from(["a", "b", "c"])},
                    optional={
                        "LayerType": _json,
                        "Inputs": _json,
                        "Outputs": st.lists(
                            st.fixed_dictionaries({}, optional={"Dimensions": _json, "Format/Datatype": _json}),
                            max_size=2,
                        ),
                        "TacticName": _json,
                        "StreamId": _json,
                        "Metadata": _json,
                    },
                ),
                min_size=1,
                max_size=3,
            )
        }
    ),
)


def _analyse_everything(profile_path, info_path=None):
    result = analyze_profile(profile_path, info_path)
    detailed = result.layer_info is not None and result.layer_info.detailed
    groups = group(result.ranking, "prefix:2")
    for fmt in ("table", "markdown", "csv", "json"):
        render_ranking(result.ranking, fmt, 3, True, groups, "prefix:2", result.notes, True)
    for key in ("family", "type", "tactic", "precision") if detailed else ("family",):
        group(result.ranking, key, detailed_info=detailed)
    diff = diff_profiles(result.ranking, result.ranking)
    for fmt in ("table", "csv", "json"):
        render_diff(diff, "before", "after", fmt, 3, result.notes, True)


def _expect_clean_or_profile_error(function, *args):
    try:
        function(*args)
    except ProfileError as err:
        assert "\n" not in str(err)


@_SETTINGS
@given(document=_profiles)
def test_near_trtexec_profiles(tmp_path, document):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(document, allow_nan=True))
    _expect_clean_or_profile_error(_analyse_everything, path)


@_SETTINGS
@given(document=_json)
def test_any_json_document(tmp_path, document):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(document, allow_nan=True))
    _expect_clean_or_profile_error(_analyse_everything, path)


@_SETTINGS
@given(data=st.binary(max_size=200))
def test_any_bytes(tmp_path, data):
    path = tmp_path / "p.json"
    path.write_bytes(data)
    _expect_clean_or_profile_error(_analyse_everything, path)


@_SETTINGS
@given(info=_layer_infos)
def test_any_layer_info(tmp_path, info):
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps([{"count": 2}] + [{"name": n, "timeMs": 2.0, "averageMs": 1.0} for n in "abc"]))
    path = tmp_path / "l.json"
    path.write_text(json.dumps(info, allow_nan=True))
    _expect_clean_or_profile_error(_analyse_everything, profile, path)


def test_the_fuzzers_reach_the_success_path(tmp_path):
    # Guards the strategies themselves: a valid profile must analyse, or every fuzz case could be an error.
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"count": 1}, {"name": "a", "timeMs": 1.0}]))
    _analyse_everything(path)
    with pytest.raises(ProfileError):
        _analyse_everything(tmp_path / "missing.json")

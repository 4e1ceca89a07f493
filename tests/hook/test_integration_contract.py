"""The integration table (polygraphy_ext/integration/table.py) against the installed Polygraphy: every attribute
we wrap, replace, extend or swap exists with the parameters we rely on, and the hook applies every row it owns."""

import json
import os
import subprocess
import sys

import pytest

from polygraphy_ext.integration import table

RESOLVE = r"""
import importlib, inspect, json, sys
from polygraphy_ext.integration.table import PATCHES

def resolve(module_name, attribute):
    obj = importlib.import_module(module_name)
    for part in attribute.split("."):
        if part.endswith("()"):
            cls = getattr(obj, part[:-2])
            obj = cls(b"")  # the classes with instance attributes in the table take a model/engine first
        else:
            obj = getattr(obj, part)
    return obj

out = {}
for p in PATCHES:
    key = p.module + ":" + p.attribute
    try:
        obj = resolve(p.module, p.attribute)
    except Exception as err:
        out[key] = {"exists": False, "error": repr(err)}
        continue
    entry = {"exists": True, "owner": getattr(obj, "__module__", None) or type(obj).__module__,
             "type": type(obj).__name__}
    if callable(obj):
        try:
            entry["params"] = list(inspect.signature(obj).parameters)
        except (TypeError, ValueError):
            entry["params"] = None
    out[key] = entry
print(json.dumps(out))
"""


def _resolve(hook_on):
    env = dict(os.environ)
    env.pop("POLYGRAPHY_EXT_DISABLE_HOOK", None)
    if not hook_on:
        env["POLYGRAPHY_EXT_DISABLE_HOOK"] = "1"
    proc = subprocess.run([sys.executable, "-c", RESOLVE], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def polygraphy_own():
    return _resolve(hook_on=False)


@pytest.fixture(scope="module")
def patched():
    return _resolve(hook_on=True)


@pytest.mark.parametrize("patch", table.PATCHES, ids=lambda p: f"{p.module}:{p.attribute}")
def test_attribute_exists_with_the_parameters_we_rely_on(patch, polygraphy_own):
    entry = polygraphy_own[f"{patch.module}:{patch.attribute}"]
    assert entry["exists"], entry.get("error")
    if patch.params is None:
        return  # data (TOOL_REGISTRY, an instance's private attribute): existing is the contract
    assert entry["owner"].startswith("polygraphy") and not entry["owner"].startswith("polygraphy_ext"), entry
    if patch.params is not None:
        params = entry.get("params")
        assert params is not None, entry
        bound = [p for p in params if p != "self"]
        wanted = [p for p in patch.params if p != "self"]
        assert bound[: len(wanted)] == wanted, f"{patch.attribute}: Polygraphy has {params}, we rely on {patch.params}"


@pytest.mark.parametrize(
    "patch", [p for p in table.PATCHES if p.how in ("wrap", "replace")], ids=lambda p: f"{p.module}:{p.attribute}"
)
def test_the_hook_applies_every_row_it_owns(patch, patched):
    entry = patched[f"{patch.module}:{patch.attribute}"]
    assert entry["exists"], entry
    if patch.params is None:  # an instance attribute: its value is now one of our objects
        assert entry["type"] == "ReferenceModelLoader", entry
    else:
        assert entry["owner"].startswith("polygraphy_ext"), entry


def test_tool_registry_is_extended():
    code = "from polygraphy.tools.registry import TOOL_REGISTRY; print([t.name for t in TOOL_REGISTRY])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "rank-profile" in proc.stdout


def test_hook_watches_exactly_the_modules_of_the_rows_it_applies():
    from polygraphy_ext.integration import hook

    assert sorted(hook.IMPORT_HOOKS) == table.hooked_modules()
    assert set(hook.IMPORT_HOOKS.values()) == {"polygraphy_ext.integration.table:apply_for"}


def test_every_row_is_complete_and_names_code_that_exists():
    import importlib

    for patch in table.PATCHES:
        assert patch.how in ("extend", "wrap", "replace", "swap") and patch.why.strip(), patch
        module = importlib.import_module(patch.applied_by)
        if patch.how != "swap":
            assert callable(getattr(module, "apply", None)), patch.applied_by

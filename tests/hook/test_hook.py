"""The start-up hook registers tools and surgeon subtools into Polygraphy, lazily and safely."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TEST_TOOLS = {
    "POLYGRAPHY_EXT_TEST_TOOLS": "pgx-hello=pgx_test_tools:HelloTool,pgx-broken=pgx_test_tools:BrokenTool",
    "POLYGRAPHY_EXT_TEST_SURGEON_SUBTOOLS": "pgx-hello-surgeon=pgx_test_tools:HelloSubtool",
}


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env.update(TEST_TOOLS)
    env.update(extra)
    return env


def _python(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(**env), timeout=300)


def test_hook_is_installed_at_startup_without_importing_polygraphy():
    proc = _python(
        "import sys; "
        "print('hook' if '_polygraphy_ext_hook' in sys.modules else 'nohook'); "
        "print(sorted(m for m in sys.modules if m == 'polygraphy' or m.startswith('polygraphy.')))"
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    assert lines[0] == "hook"
    assert lines[1] == "[]"


def test_hook_can_be_disabled():
    proc = _python(
        "import sys; from polygraphy.tools.registry import TOOL_REGISTRY; "
        "print([t.name for t in TOOL_REGISTRY])",
        POLYGRAPHY_EXT_DISABLE_HOOK="1",
    )
    assert proc.returncode == 0, proc.stderr
    assert "pgx-hello" not in proc.stdout and "run" in proc.stdout


def test_console_script_runs_hooked_tool_and_subtool(run_polygraphy):
    env = _env()
    tool = run_polygraphy("pgx-hello", "--who", "ci", env=env)
    assert tool.returncode == 0, tool.stdout + tool.stderr
    assert "hello ci from pgx-hello" in tool.stdout

    sub = run_polygraphy("surgeon", "pgx-hello-surgeon", "--who", "ci", env=env)
    assert sub.returncode == 0, sub.stdout + sub.stderr
    assert "hello ci from pgx-hello-surgeon" in sub.stdout


def test_help_lists_our_tools_and_nothing_fails_to_load(run_polygraphy):
    env = _env(POLYGRAPHY_EXT_TEST_TOOLS="pgx-hello=pgx_test_tools:HelloTool")
    top = run_polygraphy("-h", env=env)
    surgeon = run_polygraphy("surgeon", "-h", env=env)
    assert top.returncode == 0 and surgeon.returncode == 0
    for out in (top.stdout + top.stderr, surgeon.stdout + surgeon.stderr):
        assert "could not be loaded" not in out
    assert "pgx-hello" in top.stdout
    assert "pgx-hello-surgeon" in surgeon.stdout
    # Real tools appear once their implementation exists.
    from polygraphy_ext.integration import registry, tool_proxy

    for name, module, _ in registry.TOOLS:
        assert (name in top.stdout) == tool_proxy.module_exists(module)
    for name, module, _ in registry.SURGEON_SUBTOOLS:
        assert (name in surgeon.stdout) == tool_proxy.module_exists(module)


def test_main_twice_in_one_process_after_the_import_cycle():
    # Importing a tool module first imports polygraphy.tools -> registry -> hook while the tool module is
    # half-initialized; without lazy proxies Polygraphy would register a MissingTool here.
    code = """
import pgx_test_tools
from polygraphy.tools import main
from polygraphy.tools.registry import TOOL_REGISTRY, MissingTool
assert not [t.name for t in TOOL_REGISTRY if isinstance(t, MissingTool)], 'MissingTool registered'
rc1 = main(['pgx-hello', '--who', 'first'])
rc2 = main(['surgeon', 'pgx-hello-surgeon', '--who', 'second'])
rc3 = main(['pgx-hello', '--who', 'third'])
names = [t.name for t in TOOL_REGISTRY]
print('rcs', rc1, rc2, rc3, 'count', names.count('pgx-hello'))
"""
    proc = _python(code)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hello first from pgx-hello" in proc.stdout
    assert "hello second from pgx-hello-surgeon" in proc.stdout
    assert "hello third from pgx-hello" in proc.stdout
    assert "rcs 0 0 0 count 1" in proc.stdout


def test_install_is_idempotent():
    code = """
import _polygraphy_ext_hook as _hook
import sys
_hook.install(); _hook.install()
from polygraphy.tools.registry import TOOL_REGISTRY
import polygraphy.tools.surgeon.surgeon as s
from polygraphy_ext.integration.patches import tools
import polygraphy.tools.registry as r
tools.extend_tool_registry(r); tools.extend_surgeon(s); _hook.install()
finders = [f for f in sys.meta_path if type(f).__name__ == 'PolygraphyExtFinder']
names = [t.name for t in TOOL_REGISTRY]
subs = [t.name for t in s.Surgeon().get_subtools()[1]]
print(len(finders), names.count('pgx-hello'), subs.count('pgx-hello-surgeon'))
"""
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "1", "1"]


def test_broken_tool_is_reported_not_raised(run_polygraphy):
    proc = run_polygraphy("pgx-broken", env=_env())
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "deliberately broken" in out
    assert "Traceback" not in out


def test_broken_patch_target_never_breaks_polygraphy():
    # The .pth hook is disabled for this process; install it by hand with a patch target that cannot import.
    code = """
import os
os.environ.pop('POLYGRAPHY_EXT_DISABLE_HOOK')
import _polygraphy_ext_hook as _hook
_hook.IMPORT_HOOKS['polygraphy.tools.registry'] = 'no_such_module:nothing'
_hook.install()
from polygraphy.tools.registry import TOOL_REGISTRY
print('ok', len(TOOL_REGISTRY) > 5)
"""
    proc = _python(code, POLYGRAPHY_EXT_DISABLE_HOOK="1")
    assert proc.returncode == 0, proc.stderr
    assert "ok True" in proc.stdout


def test_run_entry_point_is_registered_and_loads():
    from importlib import metadata

    eps = metadata.entry_points().select(group="polygraphy.run.plugins")
    ours = [ep for ep in eps if ep.value.startswith("polygraphy_ext.")]
    assert ours, "polygraphy.run.plugins entry point missing"
    groups = ours[0].load()()
    assert isinstance(groups, list)


def test_run_entry_point_installs_the_hook_where_pth_files_are_not_processed():
    # As under `pip install --target`: no .pth ran (simulated by the disable switch), so Polygraphy's registry
    # was imported unpatched; `polygraphy run` then loads our entry point, which installs the hook and patches
    # the registry that is already imported.
    code = """
import os
from polygraphy.tools.registry import TOOL_REGISTRY
before = 'pgx-hello' in [t.name for t in TOOL_REGISTRY]
os.environ.pop('POLYGRAPHY_EXT_DISABLE_HOOK')
from polygraphy_ext.run_extension import get_arg_groups
get_arg_groups()
after = [t.name for t in TOOL_REGISTRY].count('pgx-hello')
print(before, after)
"""
    proc = _python(code, POLYGRAPHY_EXT_DISABLE_HOOK="1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "1"]


def test_building_parsers_imports_no_pass_and_no_onnx_graphsurgeon():
    # Every `polygraphy` command builds every tool's and subtool's parser; our proxies import the tool
    # modules then, and those must keep the heavy pass imports (onnx, onnx-graphsurgeon) for run time.
    code = """
import contextlib, io, sys
from polygraphy.tools import main
for argv in (['-h'], ['surgeon', '-h']):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(argv)
        except SystemExit:
            pass
heavy = [m for m in sys.modules if m.startswith('onnx_graphsurgeon') or m == 'onnx'
         or m in ('polygraphy_ext.passes.dim_alignment.align', 'polygraphy_ext.passes.layernorm_fusion.fuse')]
print('heavy:', sorted(heavy))
"""
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert "heavy: []" in proc.stdout, proc.stdout


def test_hook_import_pulls_in_nothing_at_interpreter_start():
    # What a user pays at every start is the hook's cumulative import time: it must import no module itself,
    # nor make a finder import one while locating it (an editable install's redirector imports importlib.util
    # for the modules it maps, hence the .pth name that sorts before it).
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"], capture_output=True, text=True,
                          env=_env(), timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("import time:") and "|" in line]
    names = [line.split("|")[2] for line in lines]
    index = next(i for i, name in enumerate(names) if name.strip() == "_polygraphy_ext_hook")
    depth = len(names[index]) - len(names[index].lstrip())
    children = []
    for name in reversed(names[:index]):  # importtime prints a module's imports right before it, indented deeper
        if len(name) - len(name.lstrip()) <= depth:
            break
        children.append(name.strip())
    assert children == [], f"the hook's import pulled in {children}"

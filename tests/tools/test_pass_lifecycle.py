"""The shared pass lifecycle (tools/pass_subtool.py): every subtool keeps every model field, refuses bad input
in one line, works as constant-functor loaders, and a new pass is a few declarations."""

import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import helper

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "passes" / "align_dims"))
import align_graphs as graphs  # noqa: E402

BERT14 = HERE.parent / "passes" / "fuse_layernorm" / "fixtures" / "bert_block_opset14.onnx"
TOY = {"POLYGRAPHY_EXT_TEST_SURGEON_SUBTOOLS": "name-nodes=pgx_toy_pass:NameNodesTool"}


def _toy_env():
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])), **TOY}


def _fail_line(proc):
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.startswith("[!]")]
    assert len(lines) == 1, text
    return lines[0]


def _with_every_field(model):
    model.ir_version = 8
    model.producer_name, model.producer_version = "some-exporter", "9.9"
    model.domain, model.model_version, model.doc_string = "com.example.models", 7, "kept verbatim"
    helper.set_model_props(model, {"origin": "test", "license": "none"})
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    model.functions.append(
        helper.make_function("com.example", "Twice", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])],
                             [helper.make_opsetid("", 14)])
    )
    return model


def _fused_three(model):
    return [n.op_type for n in model.graph.node].count("LayerNormalization") == 3


def _padded_to_192(model):
    return any(192 in init.dims for init in model.graph.initializer)


SUBTOOLS = {
    # subtool: (model, extra args, what proves the pass ran)
    "fuse-ln": (lambda: onnx.load(str(BERT14)), [], _fused_three),
    "align-dims": (lambda: graphs.bert_ffn(hidden=64, ffn=191), [], _padded_to_192),
}


@pytest.mark.parametrize("subtool", sorted(SUBTOOLS))
def test_every_model_field_is_kept(subtool, run_polygraphy, tmp_path):
    make, extra, ran = SUBTOOLS[subtool]
    model = _with_every_field(make())
    src, out = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(model, str(src))
    proc = run_polygraphy("surgeon", subtool, src, "-o", out, *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = onnx.load(str(out))
    assert ran(result)
    assert result.ir_version == 8
    assert (result.producer_name, result.producer_version) == ("some-exporter", "9.9")
    assert (result.domain, result.model_version, result.doc_string) == ("com.example.models", 7, "kept verbatim")
    assert {p.key: p.value for p in result.metadata_props} == {"origin": "test", "license": "none"}
    assert [(f.domain, f.name) for f in result.functions] == [("com.example", "Twice")]
    opsets = {o.domain: o.version for o in result.opset_import}
    assert opsets["com.example"] == 1 and opsets[""] >= 14
    onnx.checker.check_model(result, full_check=True)


@pytest.mark.parametrize("subtool", sorted(SUBTOOLS) + ["name-nodes"])
@pytest.mark.parametrize("flip_shape_inference", [False, True])
def test_empty_file_is_one_line_and_writes_nothing(subtool, flip_shape_inference, run_polygraphy, tmp_path):
    shape_flag = []
    if flip_shape_inference:  # whichever way the subtool defaults, the other way must fail the same
        shape_flag = ["--no-shape-inference"] if subtool == "fuse-ln" else ["--shape-inference"]
    empty, out = tmp_path / "empty.onnx", tmp_path / "out.onnx"
    empty.write_bytes(b"")
    proc = run_polygraphy("surgeon", subtool, empty, "-o", out, *shape_flag, env=_toy_env())
    assert proc.returncode == 1
    assert "it holds no graph" in _fail_line(proc)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["empty.onnx"]


def test_a_pass_declared_in_a_few_lines_gets_the_whole_lifecycle(run_polygraphy, tmp_path):
    model = graphs.bert_ffn(hidden=64, ffn=192)
    for node in model.graph.node:
        node.name = ""
    model.doc_string = "toy"
    src, out, report = tmp_path / "in.onnx", tmp_path / "o" / "out.onnx", tmp_path / "r.json"
    onnx.save(model, str(src))
    proc = run_polygraphy("surgeon", "name-nodes", src, "-o", out, "--prefix", "n", "--report", report, "--check",
                          env=_toy_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    named = onnx.load(str(out))
    assert all(n.name.startswith("n_") for n in named.graph.node) and named.doc_string == "toy"
    assert "--check: outputs match" in proc.stdout and f"named {len(model.graph.node)} node(s)" in proc.stdout
    assert '"named"' in report.read_text()
    help_text = run_polygraphy("surgeon", "name-nodes", "-h", env=_toy_env()).stdout
    for option in ("--prefix", "--report", "--check", "--check-atol", "--check-rtol", "--shape-inference",
                   "--external-data-dir", "--save-external-data", "-o"):
        assert option in help_text, option
    proc = run_polygraphy("surgeon", "name-nodes", src, "-o", out, "--prefix", "", env=_toy_env())
    assert proc.returncode == 1 and "--prefix must not be empty" in _fail_line(proc)


def test_run_form_of_a_pass_group_spells_its_options_with_the_pass_name():
    from polygraphy.tools.args import util as args_util
    from polygraphy.tools.script import Script, inline, safe

    sys.path.insert(0, str(HERE))
    from pgx_toy_pass import NameNodesArgs, NameNodesRunArgs

    import argparse

    for group_class, argv, flag in (
        (NameNodesArgs, ["--prefix", "p"], "--prefix"),
        (NameNodesRunArgs, ["--name-nodes", "--name-nodes-prefix", "p"], "--name-nodes-prefix"),
    ):
        group = group_class()
        group.register({})
        parser = argparse.ArgumentParser()
        group.add_parser_args(parser)
        group.parse(parser.parse_args(argv))
        assert group.enabled and group.prefix == "p" and group.flag("prefix") == flag
        script = Script()
        name = group.add_to_script(script, inline(safe("model")))
        assert "NameNodes(model, prefix='p')" in str(script) and str(name) == "name_nodes"
    del args_util


CONSTANT_FUNCTORS = r"""
import sys
sys.path.insert(0, {align_dir!r})
import onnx, align_graphs as graphs
from polygraphy_ext.passes.layernorm_fusion.loader import FuseLayerNorm
from polygraphy_ext.passes.dim_alignment.loader import AlignDims
fuse = FuseLayerNorm(onnx.load({bert!r}))
align = AlignDims(graphs.bert_ffn(hidden=64, ffn=191))
for loader in (fuse, align, fuse):
    loader()
print(len(fuse.report.fused), align.report.changed)
"""


def test_loaders_are_constant_functors_under_polygraphy_correctness_checks():
    code = CONSTANT_FUNCTORS.format(align_dir=str(HERE.parent / "passes" / "align_dims"), bert=str(BERT14))
    env = dict(os.environ, POLYGRAPHY_INTERNAL_CORRECTNESS_CHECKS="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split()[-2:] == ["3", "True"]


@pytest.mark.parametrize("target,skip,flags,expected", [
    ("native", True, ("--target", "--skip"), "--skip needs --target plugin"),
    (None, True, ("--fuse-ln-target", "--fuse-ln-skip"), "--fuse-ln-skip needs --fuse-ln-target plugin"),
    ("plugin", True, ("--target", "--skip"), None),
    ("native", False, ("--target", "--skip"), None),
])
def test_skip_rule_is_written_once_and_spelled_by_the_caller(target, skip, flags, expected):
    from polygraphy_ext.passes.layernorm_fusion.options import option_conflict

    message = option_conflict(target, skip, target_flag=flags[0], skip_flag=flags[1])
    assert (message is None) if expected is None else message.startswith(expected)


@pytest.mark.parametrize("subtool", sorted(SUBTOOLS))
@pytest.mark.parametrize("input_external", [False, True])
def test_save_external_data_into_a_subdirectory(subtool, input_external, run_polygraphy, tmp_path):
    make, extra, ran = SUBTOOLS[subtool]
    src = tmp_path / "in" / "model.onnx"
    src.parent.mkdir()
    onnx.save(make(), str(src), save_as_external_data=input_external, location="w.bin", size_threshold=0)
    out = tmp_path / "out" / "m.onnx"
    proc = run_polygraphy("surgeon", subtool, src, "-o", out, "--save-external-data", "sub/ext.bin", *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.relative_to(out.parent).as_posix() for p in out.parent.rglob("*") if p.is_file()) == [
        "m.onnx", "sub/ext.bin"]
    result = onnx.load(str(out))
    assert ran(result)
    locations = {e.value for t in onnx.load(str(out), load_external_data=False).graph.initializer
                 for e in t.external_data if e.key == "location"}
    assert locations == {"sub/ext.bin"}


def test_save_external_data_outside_the_output_directory_is_refused(run_polygraphy, tmp_path):
    proc = run_polygraphy("surgeon", "fuse-ln", BERT14, "-o", tmp_path / "o.onnx", "--save-external-data", "../x.bin")
    assert proc.returncode == 1 and "--save-external-data must be a path inside" in _fail_line(proc)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", ["plugin-nodes", "external-data"])
def test_no_onnxruntime_shape_inference_noise(case, run_polygraphy, tmp_path):
    src = BERT14
    extra = ["--target", "plugin"] if case == "plugin-nodes" else []
    if case == "external-data":
        src = tmp_path / "m.onnx"
        onnx.save(onnx.load(str(BERT14)), str(src), save_as_external_data=True, location="w.bin", size_threshold=0)
    proc = run_polygraphy("surgeon", "fuse-ln", src, "-o", tmp_path / "o" / "f.onnx", *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Falling back" not in proc.stdout + proc.stderr and "Consider installing ONNX-Runtime" not in proc.stdout

"""`polygraphy surgeon fuse-ln` and `polygraphy run --fuse-ln` end to end, through the console script."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from polygraphy_ext.numerics import compare_models

FIXTURES = Path(__file__).resolve().parents[1] / "passes" / "fuse_layernorm" / "fixtures"
BERT14 = FIXTURES / "bert_block_opset14.onnx"
BERT11 = FIXTURES / "bert_block_opset11.onnx"


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _ops(path):
    return [n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node]


def _fail_line(proc):
    """The one '[!]' line Polygraphy prints for a user error; never a traceback."""
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.startswith("[!]")]
    assert len(lines) == 1, text
    return lines[0]


def test_fuses_checks_and_reports(run_polygraphy, tmp_path):
    model = tmp_path / "in.onnx"
    shutil.copy(BERT14, model)
    before = _digest(model)
    out, report = tmp_path / "out" / "fused.onnx", tmp_path / "r.json"
    proc = run_polygraphy("surgeon", "fuse-ln", model, "-o", out, "--report", report, "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _ops(out).count("LayerNormalization") == 3 and "ReduceMean" not in _ops(out)
    assert _digest(model) == before
    data = json.loads(report.read_text())
    assert (data["num_candidates"], data["num_fused"], data["opset_before"], data["opset_after"]) == (3, 3, 14, 17)
    assert all(c["fused"] and c["reason"] is None and c["replaced_nodes"] for c in data["candidates"])
    assert "outputs match" in proc.stdout + proc.stderr and "fused 3 of 3" in proc.stdout + proc.stderr


def test_report_lists_rejections_with_reasons(run_polygraphy, tmp_path):
    report = tmp_path / "r.json"
    proc = run_polygraphy(
        "surgeon", "fuse-ln", FIXTURES / "t5_rmsnorm_opset16.onnx", "-o", tmp_path / "o.onnx", "--report", report
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(report.read_text())
    assert data["num_fused"] == 0 and len(data["candidates"]) == 2
    assert {c["reason"] for c in data["candidates"]} == {"RMSNorm fusion is off (pass --rms)"}


def test_report_and_log_name_a_refused_chain_and_the_rest_still_fuses(run_polygraphy, tmp_path):
    model = onnx.load(str(BERT14))
    pow_node = next(n for n in model.graph.node if n.name == "/ln1/Pow")
    model.graph.initializer.append(numpy_helper.from_array(np.array(3.0, np.float32), "cube"))
    pow_node.input[1] = "cube"
    src, out, report = tmp_path / "cube.onnx", tmp_path / "o.onnx", tmp_path / "r.json"
    onnx.save(model, str(src))
    proc = run_polygraphy("surgeon", "fuse-ln", src, "-o", out, "--report", report, "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(report.read_text())
    assert (data["num_candidates"], data["num_fused"]) == (3, 2)
    (refused,) = [c for c in data["candidates"] if not c["fused"]]
    assert refused["reason"] == "Pow exponent is 3" and refused["anchor"] == "/ln1/ReduceMean_1"
    assert "not fused (1): Pow exponent is 3" in proc.stdout + proc.stderr
    assert _ops(out).count("LayerNormalization") == 2 and _ops(out).count("Pow") == 1


def test_plugin_skip_target(run_polygraphy, tmp_path):
    out = tmp_path / "p.onnx"
    proc = run_polygraphy("surgeon", "fuse-ln", BERT11, "-o", out, "--target", "plugin", "--skip")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ops = _ops(out)
    assert (ops.count("SkipLayerNorm"), ops.count("LayerNorm")) == (2, 1)


def test_every_option_is_in_help(run_polygraphy):
    text = run_polygraphy("surgeon", "fuse-ln", "-h").stdout
    for option in ("--target", "--rms", "--skip", "--no-raise-opset", "--report", "--check", "--check-atol",
                   "--check-rtol", "--no-shape-inference", "--external-data-dir", "-o"):
        assert option in text, option
    doc = (Path(__file__).resolve().parents[2] / "docs" / "fuse-ln.md").read_text()
    for option in ("--target", "--rms", "--skip", "--no-raise-opset", "--report", "--check", "--check-atol",
                   "--check-rtol", "--fuse-ln", "--fuse-ln-target", "--fuse-ln-rms", "--fuse-ln-skip"):
        assert f"`{option}" in doc, option


BAD_INPUTS = {
    "missing-input": (lambda tmp: [tmp / "nope.onnx"], "does not exist"),
    "not-onnx": (lambda tmp: [_write(tmp / "junk.onnx", b"not a model")], "cannot read"),
    "skip-needs-plugin": (lambda tmp: [BERT14, "--skip"], "--skip needs --target plugin"),
    "unsafe-opset-raise": (lambda tmp: [_bert11_with_strided_same_pool(tmp)], "have no exact form there"),
    "check-fails": (lambda tmp: [BERT14, "--check", "--check-atol", "0", "--check-rtol", "0"], "--check failed"),
    "fp-to-fp16": (lambda tmp: [BERT14, "--fp-to-fp16"], "--fp-to-fp16 is not supported by fuse-ln"),
    "report-is-a-directory": (lambda tmp: [BERT14, "--report", _mkdir(tmp / "reports")], "is a directory"),
    "report-under-a-file": (lambda tmp: [BERT14, "--report", _write(tmp / "f", b"") / "r.json"], "is not a directory"),
}


def _bert11_with_strided_same_pool(tmp):
    """BERT at opset 11 plus a MaxPool whose auto_pad=SAME_UPPER with stride 2 changed meaning in opset 12."""
    model = onnx.load(str(BERT11))
    out = model.graph.output[0].name
    model.graph.node.append(
        onnx.helper.make_node("MaxPool", [out], ["pooled"], kernel_shape=[3], strides=[2], auto_pad="SAME_UPPER")
    )
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info("pooled"))
    path = tmp / "bert11_pool.onnx"
    onnx.save(model, str(path))
    return path


def _write(path, data):
    path.write_bytes(data)
    return path


def _mkdir(path):
    path.mkdir()
    return path


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_writes_nothing(case, run_polygraphy, tmp_path):
    make_args, message = BAD_INPUTS[case]
    args = make_args(tmp_path)
    out = tmp_path / "out" / "fused.onnx"
    report = tmp_path / "report.json"
    if "--report" not in args:
        args += ["--report", report]
    proc = run_polygraphy("surgeon", "fuse-ln", *args, "-o", out)
    assert proc.returncode != 0
    assert message in _fail_line(proc)
    assert not out.exists() and not report.exists()
    assert not any(p.name.startswith(".fused.onnx") for p in tmp_path.rglob("*"))  # no temp leftovers


def test_output_that_is_a_directory_is_refused(run_polygraphy, tmp_path):
    proc = run_polygraphy("surgeon", "fuse-ln", BERT14, "-o", tmp_path)
    assert proc.returncode != 0 and "is a directory" in _fail_line(proc)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_its_input(run_polygraphy, tmp_path):
    model = tmp_path / "m.onnx"
    shutil.copy(BERT14, model)
    before = _digest(model)
    proc = run_polygraphy("surgeon", "fuse-ln", model, "-o", model)
    assert proc.returncode != 0 and "refusing to overwrite the input" in _fail_line(proc)
    assert _digest(model) == before


def _external_data_model(directory: Path, big_elements: int):
    """x @ W (W external, never touched by the pass) -> decomposed LayerNorm with external gamma/beta."""
    d = 64
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"),
        helper.make_node("ReduceMean", ["h"], ["m"], axes=[-1], name="rm1"),
        helper.make_node("Sub", ["h", "m"], ["d"], name="sub"),
        helper.make_node("Mul", ["d", "d"], ["sq"], name="sq"),
        helper.make_node("ReduceMean", ["sq"], ["v"], axes=[-1], name="rm2"),
        helper.make_node("Add", ["v", "eps"], ["ve"], name="add"),
        helper.make_node("Sqrt", ["ve"], ["s"], name="sqrt"),
        helper.make_node("Div", ["d", "s"], ["n"], name="div"),
        helper.make_node("Mul", ["n", "g"], ["ng"], name="mulg"),
        helper.make_node("Add", ["ng", "b"], ["y"], name="addb"),
    ]
    inits = [
        numpy_helper.from_array(rng.normal(size=(d, big_elements // d)).astype(np.float32)[:, :d].copy(), "W"),
        numpy_helper.from_array(np.array(1e-5, np.float32), "eps"),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, d).astype(np.float32), "g"),
        numpy_helper.from_array(rng.uniform(-1, 1, d).astype(np.float32), "b"),
    ]
    graph = helper.make_graph(
        nodes, "ext", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, d])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, d])], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    return path


def test_external_data_stays_external_and_is_linked_next_to_the_output(run_polygraphy, tmp_path):
    src = _external_data_model(tmp_path / "src", 64 * 64)
    weights_before = _digest(tmp_path / "src" / "weights.bin")
    out = tmp_path / "dst" / "fused.onnx"
    proc = run_polygraphy("surgeon", "fuse-ln", src, "-o", out, "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fused = onnx.load(str(out), load_external_data=False)
    w = next(t for t in fused.graph.initializer if t.name == "W")
    assert w.data_location == onnx.TensorProto.EXTERNAL  # still external, same file name
    assert (tmp_path / "dst" / "weights.bin").exists()
    assert _digest(tmp_path / "src" / "weights.bin") == weights_before
    # A copy, not a hard link: onnx refuses to load external data with several links.
    onnx.load(str(src)), onnx.load(str(out))
    assert compare_models(str(src), str(out), atol=1e-4, rtol=1e-4).ok


def test_output_next_to_the_input_shares_its_external_data(run_polygraphy, tmp_path):
    src = _external_data_model(tmp_path, 64 * 64)
    weights_before = _digest(tmp_path / "weights.bin")
    out = tmp_path / "fused.onnx"
    proc = run_polygraphy("surgeon", "fuse-ln", src, "-o", out, "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fused.onnx", "model.onnx", "weights.bin"]
    assert _digest(tmp_path / "weights.bin") == weights_before
    assert compare_models(str(src), str(out), atol=1e-4, rtol=1e-4).ok


def test_ignore_external_data_reads_none_of_it(run_polygraphy, tmp_path):
    # Run from the data's directory: a guess at the working directory would find weights.bin there.
    src = _external_data_model(tmp_path / "src", 64 * 64)
    report = tmp_path / "r.json"
    proc = run_polygraphy(
        "surgeon", "fuse-ln", src, "-o", tmp_path / "o.onnx", "--ignore-external-data", "--report", report,
        cwd=tmp_path / "src",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (candidate,) = json.loads(report.read_text())["candidates"]
    assert not candidate["fused"]
    assert candidate["reason"] == "epsilon is in external data, which is not read without an external data directory"
    assert "the output still refers to weights.bin" in proc.stdout + proc.stderr


def test_external_data_name_clash_in_output_dir_is_refused(run_polygraphy, tmp_path):
    src = _external_data_model(tmp_path / "src", 64 * 64)
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "weights.bin").write_bytes(b"someone else's weights")
    out = tmp_path / "dst" / "fused.onnx"
    proc = run_polygraphy("surgeon", "fuse-ln", src, "-o", out)
    assert proc.returncode != 0 and "is not the model's external data" in _fail_line(proc)
    assert not out.exists() and (tmp_path / "dst" / "weights.bin").read_bytes() == b"someone else's weights"


RUN_MISUSE = {
    "option-without-fuse-ln": (["--fuse-ln-rms"], "need --fuse-ln"),
    "skip-without-plugin": (["--fuse-ln", "--fuse-ln-skip"], "--fuse-ln-skip needs --fuse-ln-target plugin"),
}


@pytest.mark.parametrize("case", sorted(RUN_MISUSE))
def test_run_option_misuse_is_one_line_before_anything_runs(case, run_polygraphy, tmp_path):
    args, message = RUN_MISUSE[case]
    script = tmp_path / "gen.py"
    proc = run_polygraphy("run", BERT14, "--onnxrt", "--trt", *args, "--gen-script", script)
    assert proc.returncode != 0 and message in _fail_line(proc)
    assert not script.exists() or not script.read_text()


def test_run_warns_when_no_tensorrt_runner_would_see_the_fused_model(run_polygraphy, tmp_path):
    proc = run_polygraphy("run", BERT14, "--onnxrt", "--fuse-ln", "--gen-script", tmp_path / "gen.py")
    assert proc.returncode == 0 and "no --trt runner was selected" in proc.stdout + proc.stderr


def _script_loaders(script_text):
    """Execute a --gen-script script up to its runners: the loaders it defines, nothing run yet."""
    head = script_text.split("# Runners")[0]
    namespace = {}
    exec(compile(head, "gen_script", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("target", ["native", "plugin"])
def test_run_fuses_only_what_tensorrt_receives(target, run_polygraphy, tmp_path, build_engine, request):
    script = tmp_path / "gen.py"
    extra = ["--fuse-ln-target", "plugin", "--fuse-ln-skip"] if target == "plugin" else []
    proc = run_polygraphy("run", BERT14, "--onnxrt", "--trt", "--fuse-ln", *extra, "--gen-script", script)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = script.read_text()
    onnxrt_line = next(line for line in text.splitlines() if line.startswith("build_onnxrt_session ="))
    assert onnxrt_line == f"build_onnxrt_session = SessionFromOnnx({str(BERT14)!r})"  # the original model
    assert "fuse_layernorm = FuseLayerNorm(load_onnx" in text
    assert "NetworkFromOnnxBytes(load_plugins" in text and "obj=serialize_fused_onnx" in text
    fused_bytes = _script_loaders(text)["serialize_fused_onnx"]()
    fused = onnx.load_model_from_string(fused_bytes)
    if target == "native":
        assert [n.op_type for n in fused.graph.node].count("LayerNormalization") == 3
        assert len(build_engine(fused_bytes)) > 0
    else:
        assert [n.op_type for n in fused.graph.node].count("SkipLayerNorm") == 2
        plugin_library = request.getfixturevalue("plugin_library")
        assert len(build_engine(fused_bytes, plugin_libraries=[plugin_library])) > 0

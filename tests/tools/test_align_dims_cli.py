"""`polygraphy surgeon align-dims` end to end: outputs, report, --check, and one-line errors on bad input."""

import json
import sys
from pathlib import Path

import onnx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "passes" / "align_dims"))
import align_graphs as graphs  # noqa: E402

from polygraphy_ext.numerics import compare_models  # noqa: E402


@pytest.fixture
def ffn_path(tmp_path):
    path = tmp_path / "ffn.onnx"
    onnx.save(graphs.bert_ffn(hidden=64, ffn=191), str(path))
    return path


def _one_error_line(proc):
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("[!]")]
    assert len(errors) == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return errors[0]


def test_aligns_checks_and_writes_report(run_polygraphy, ffn_path, tmp_path):
    out, report = tmp_path / "out.onnx", tmp_path / "sub" / "report.json"
    before = ffn_path.read_bytes()
    proc = run_polygraphy("surgeon", "align-dims", ffn_path, "-o", out, "--check", "--report", report)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "191 -> 192" in proc.stdout and "--check: outputs match" in proc.stdout
    assert ffn_path.read_bytes() == before
    aligned = onnx.load(str(out))
    onnx.checker.check_model(aligned, full_check=True)
    assert compare_models(str(ffn_path), aligned).ok
    data = json.loads(report.read_text())
    assert data["multiple"] == 8 and data["aligned"][0]["new_size"] == 192
    assert {c["role"] for c in data["aligned"][0]["changes"]} >= {"weight", "bias", "activation"}


@pytest.mark.parametrize("flags,multiple", [(["--precision", "int8"], 16), (["--multiple", "32"], 32), ([], 8)])
def test_precision_and_multiple(run_polygraphy, ffn_path, tmp_path, flags, multiple):
    out, report = tmp_path / "out.onnx", tmp_path / "r.json"
    proc = run_polygraphy("surgeon", "align-dims", ffn_path, "-o", out, "--report", report, *flags)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(report.read_text())
    assert data["multiple"] == multiple and data["aligned"][0]["new_size"] == 192


def test_max_overhead_zero_leaves_model_alone(run_polygraphy, ffn_path, tmp_path):
    out, report = tmp_path / "out.onnx", tmp_path / "r.json"
    proc = run_polygraphy("surgeon", "align-dims", ffn_path, "-o", out, "--max-overhead", "0", "--report", report)
    assert proc.returncode == 0
    data = json.loads(report.read_text())
    assert data["aligned"] == [] and "max overhead 0%" in data["left_alone"][0]["reason"]


def test_help_documents_every_option(run_polygraphy):
    proc = run_polygraphy("surgeon", "align-dims", "-h")
    assert proc.returncode == 0
    for option in ("--precision", "--multiple", "--max-overhead", "--report", "--check"):
        assert option in proc.stdout
    doc = (Path(__file__).resolve().parents[2] / "docs" / "align-dims.md").read_text()
    for option in ("--precision", "--multiple", "--max-overhead", "--report", "--check", "-o"):
        assert f"`{option}" in doc


def _custom_op_model():
    """A node onnxruntime has no kernel for: --check cannot run it."""
    b = graphs.ModelBuilder(13)
    x = b.input("x", ["batch", 16])
    h = b.op("MatMul", [x, b.weight(16, 8)])
    b.nodes.append(onnx.helper.make_node("Mystery", [h], ["y"], domain="com.example"))
    model = onnx.helper.make_model(
        onnx.helper.make_graph(b.nodes, "custom", b.inputs, [onnx.helper.make_tensor_value_info("y", 1, None)], b.inits),
        opset_imports=[onnx.helper.make_opsetid("", 17), onnx.helper.make_opsetid("com.example", 1)],
    )
    return model


def _cyclic_model():
    b = graphs.ModelBuilder(14)
    x = b.input("x", ["batch", 13])
    b.nodes.append(onnx.helper.make_node("MatMul", ["looped", b.weight(13, 13)], ["y"]))
    b.nodes.append(onnx.helper.make_node("Add", ["y", x], ["looped"]))
    return onnx.helper.make_model(
        onnx.helper.make_graph(b.nodes, "cycle", b.inputs, [onnx.helper.make_tensor_value_info("y", 1, ["batch", 13])],
                               b.inits),
        opset_imports=[onnx.helper.make_opsetid("", 17)],
    )


def test_check_rejects_a_differing_model():
    from polygraphy.exception import PolygraphyException

    from polygraphy_ext.numerics import INPUT_KINDS, generate_inputs
    from polygraphy_ext.tools.check import check_rewrite

    original = graphs.bert_ffn(hidden=64, ffn=191)
    different = graphs.bert_ffn(hidden=64, ffn=191)
    different.graph.initializer[2].CopyFrom(
        onnx.numpy_helper.from_array(
            onnx.numpy_helper.to_array(different.graph.initializer[2]) + 1.0, different.graph.initializer[2].name
        )
    )
    with pytest.raises(PolygraphyException, match="--check failed, nothing written"):
        feeds = [(kind, generate_inputs(original, kind)) for kind in INPUT_KINDS]
        check_rewrite(original, different, feeds, atol=None, rtol=None, fp32_default=(1e-5, 1e-5), noun="aligned")


@pytest.mark.parametrize(
    "case,expected",
    [
        ("missing", "Model file not found"),
        ("garbage", "Could not load ONNX model"),
        ("same-path", "must differ from the input model"),
        ("both", "mutually exclusive"),
        ("zero-multiple", "multiple must be a positive integer"),
        ("bad-precision", "unknown precision 'fp64'"),
        ("negative-overhead", "--max-overhead must be a percentage >= 0"),
        ("check-cannot-run", "--check could not run the model in onnxruntime"),
        ("empty-file", "it holds no graph"),
        ("model-is-directory", "Model path is not a file"),
        ("output-is-directory", "-o/--output must be a file path, got the directory"),
        ("output-under-a-file", "-o/--output cannot be created"),
        ("report-is-directory", "--report must be a file path, got the directory"),
        ("report-is-output", "--report (" ),
        ("cyclic-graph", "align-dims could not process"),
    ],
)
def test_bad_input_one_line_error_no_output(run_polygraphy, ffn_path, tmp_path, case, expected):
    out = tmp_path / "out.onnx"
    model = ffn_path
    extra = []
    if case == "missing":
        model = tmp_path / "nope.onnx"
    elif case == "garbage":
        model = tmp_path / "garbage.onnx"
        model.write_bytes(b"not a model")
    elif case == "same-path":
        out = ffn_path
    elif case == "both":
        extra = ["--precision", "fp16", "--multiple", "8"]
    elif case == "zero-multiple":
        extra = ["--multiple", "0"]
    elif case == "bad-precision":
        extra = ["--precision", "fp64"]
    elif case == "negative-overhead":
        extra = ["--max-overhead", "-1"]
    elif case == "check-cannot-run":
        model = tmp_path / "custom.onnx"
        onnx.save(_custom_op_model(), str(model))
        extra = ["--check"]
    elif case == "empty-file":
        model = tmp_path / "empty.onnx"
        model.write_bytes(b"")  # parses as an empty ModelProto
    elif case == "model-is-directory":
        model = tmp_path / "models"
        model.mkdir()
    elif case == "output-is-directory":
        out = tmp_path / "outdir"
        out.mkdir()
    elif case == "output-under-a-file":
        (tmp_path / "plain").write_text("")
        out = tmp_path / "plain" / "out.onnx"
    elif case == "cyclic-graph":
        model = tmp_path / "cycle.onnx"
        onnx.save(_cyclic_model(), str(model))
        extra = ["--max-overhead", "100"]  # a cycle only matters once the graph is edited (and re-sorted)
    report = tmp_path / "r.json"
    if case == "report-is-directory":
        report.mkdir()
    elif case == "report-is-output":
        report = out
    before = ffn_path.read_bytes()
    proc = run_polygraphy("surgeon", "align-dims", model, "-o", out, "--report", report, *extra)
    assert proc.returncode == 1
    assert expected in _one_error_line(proc)
    assert report.is_dir() if case == "report-is-directory" else not report.exists()
    assert ffn_path.read_bytes() == before
    if case == "output-is-directory":
        assert not list(out.iterdir())
    elif case != "same-path":
        assert not out.exists()
    assert not list(tmp_path.rglob(".*.tmp"))


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc (a directory nothing can be created in)")
def test_unwritable_destinations_leave_nothing_behind(run_polygraphy, ffn_path, tmp_path):
    nowhere = Path("/proc/polygraphy-ext-no-such-dir")  # passes the up-front checks, fails at write time
    out, report = tmp_path / "out.onnx", tmp_path / "r.json"
    proc = run_polygraphy("surgeon", "align-dims", ffn_path, "-o", out, "--report", nowhere / "r.json")
    assert proc.returncode == 1
    assert "Could not write the report" in _one_error_line(proc)
    assert not out.exists()
    proc = run_polygraphy("surgeon", "align-dims", ffn_path, "-o", nowhere / "out.onnx", "--report", report)
    assert proc.returncode == 1
    assert "Could not write" in _one_error_line(proc)
    assert not report.exists()  # written first, removed again when the model could not be
    assert not list(tmp_path.glob(".*.tmp"))


def test_report_lists_concrete_dims_and_left_alone_candidates(run_polygraphy, tmp_path):
    fixtures = Path(__file__).resolve().parents[1] / "passes" / "align_dims" / "fixtures"
    out, report = tmp_path / "uni.onnx", tmp_path / "uni.json"
    proc = run_polygraphy("surgeon", "align-dims", fixtures / "uniformer_block.onnx", "-o", out, "--report", report,
                          "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [concrete] = json.loads(report.read_text())["concrete_dims"]
    assert concrete["new_target"] == [-1, 7, 7, 64] and concrete["needed_by"]

    out, report = tmp_path / "conv.onnx", tmp_path / "conv.json"
    proc = run_polygraphy("surgeon", "align-dims", fixtures / "odd_convnet.onnx", "-o", out, "--report", report,
                          "--max-overhead", "30", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(report.read_text())
    assert all(c["old_shape"] and c["new_shape"] for d in data["aligned"] for c in d["changes"])
    assert all(d["extra_flops"] > 0 and d["overhead_pct"] > 0 for d in data["aligned"])
    assert any("91 -> 96" in item["reason"] and item["dims"] == [91, 96] for item in data["left_alone"])


def test_aligned_model_failing_onnx_checker_is_refused_unless_the_input_fails_too():
    from polygraphy.exception import PolygraphyException

    from polygraphy_ext.tools.pass_subtool import check_structure as _check_structure

    good = graphs.bert_ffn(hidden=64, ffn=191)
    broken = onnx.ModelProto()
    broken.CopyFrom(good)
    del broken.opset_import[:]  # the checker requires the ONNX opset
    with pytest.raises(PolygraphyException, match="Internal error, nothing written: the aligned model fails onnx.checker"):
        _check_structure(good, broken, "aligned")
    _check_structure(broken, broken)  # garbage in: warned about, not refused
    _check_structure(good, good)

"""`rank-profile --advise`: each rule on an engine that shows it and on engines that must not, both layer-info
schemas, the diff of findings, `--model`, and bad input."""

import json
from pathlib import Path

import pytest

from polygraphy_ext.profile import ProfileError, analyze_profile, load_layer_info
from polygraphy_ext.profile.advise import (
    DECOMPOSED_NORM_MIN_SHARE,
    TINY_KERNELS_MIN_COUNT,
    advise,
    diff_advice,
    engine_precision,
)
from polygraphy_ext.profile.layer_info import SCHEMA_TRT10, SCHEMA_TRT11
from polygraphy_ext.profile.parse import load_profile
from polygraphy_ext.profile.ranking import rank
from trtexec_format import Row, profile_text

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = FIXTURES.parents[2]


def findings(profile, layer_info=None, facts=None):
    analyzed = analyze_profile(FIXTURES / profile, FIXTURES / layer_info if layer_info else None)
    info = analyzed.layer_info
    result = advise(analyzed.ranking, bool(info and info.detailed), info.io_names if info else (), facts)
    return result


# ---------------------------------------------------------------- layer-info schemas


def test_trt10_and_trt11_layer_info_parse_to_the_same_tensors():
    old = load_layer_info(FIXTURES / "gpt_ffn3071.trt10.layers.json")
    new = load_layer_info(FIXTURES / "gpt_ffn3071.trt11.layers.json")
    assert (old.schema, new.schema) == (SCHEMA_TRT10, SCHEMA_TRT11)
    assert old.io_names == new.io_names == ("input_ids", "logits")
    for a, b in zip(old.layers, new.layers):
        assert a.precision == b.precision == "FP16"
        assert [t.dims for t in a.inputs + a.outputs] == [t.dims for t in b.inputs + b.outputs]
        assert [t.precision for t in b.inputs + b.outputs] == ["FP16", "FP16"]  # "Datatype" and "DataType" alike
    assert new.layers[0].inputs[0].format == "Row major linear"


@pytest.mark.parametrize(
    "spelling, expected",
    [("Half", "FP16"), ("kHALF", "FP16"), ("Float16", "FP16"), ("BFloat16", "BF16"), ("Float", "FP32"), ("Int8", "INT8")],
)
def test_trt11_datatype_spellings(tmp_path, spelling, expected):
    path = tmp_path / "layers.json"
    tensor = {"Name": "x", "Dimensions": [4, 8], "Format": "Row major linear", "Datatype": spelling}
    path.write_text(json.dumps({"Layers": [{"Name": "a", "LayerType": "Gemm", "Inputs": [tensor], "Outputs": [tensor]}]}))
    info = load_layer_info(path)
    assert info.schema == SCHEMA_TRT11 and info.layers[0].precision == expected


def test_mixed_schemas_are_refused(tmp_path):
    document = json.loads((FIXTURES / "gpt_ffn3071.trt10.layers.json").read_text())
    document["I/O Tensors"] = [{"Name": "input_ids", "IOMode": "Input"}]
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ProfileError, match="mixes the TensorRT <= 10 layer-info schema"):
        load_layer_info(path)


def test_unknown_schema_is_refused(tmp_path):
    path = tmp_path / "odd.json"
    tensor = {"Name": "x", "Dimensions": [4, 8], "Type": "float"}
    path.write_text(json.dumps({"Layers": [{"Name": "a", "Inputs": [tensor], "Outputs": [tensor]}]}))
    with pytest.raises(ProfileError, match="unknown layer-info schema"):
        load_layer_info(path)


# ---------------------------------------------------------------- each rule: fires where it should


def test_decomposed_norm_finding_names_the_modules_and_the_command():
    result = findings("bert_before.json", "bert_before.layers.json")
    assert result.rule_ids() == ["decomposed-norm"]
    finding = result.findings[0]
    assert finding.details["modules"] == [
        f"/encoder/layer.{b}/{m}/LayerNorm" for b in range(2) for m in ("attention/output", "output")
    ]
    assert finding.details["layer_count"] == 16
    assert finding.share == pytest.approx(0.165, abs=0.001)
    assert finding.command.startswith("polygraphy surgeon fuse-ln")


def test_fused_norms_show_no_finding():
    assert "decomposed-norm" not in findings("bert_after.json", "bert_after.layers.json").rule_ids()


@pytest.mark.parametrize("layer_info", ["gpt_ffn3071.trt10.layers.json", "gpt_ffn3071.trt11.layers.json"])
def test_misaligned_gemm_in_both_schemas(layer_info):
    result = findings("gpt_ffn3071.json", layer_info)
    assert result.rule_ids() == ["misaligned-gemm"]
    finding = result.findings[0]
    assert finding.details["dims"] == [3071]
    assert len(finding.layers) == 4 and all("/mlp/c_" in name for name in finding.layers)
    assert any("K=3071 (not a multiple of 8)" in line and "shows no Tensor Core kernel" in line for line in finding.evidence)
    assert "align-dims" in finding.command and "--precision fp16" in finding.command


def test_misaligned_gemm_needs_detailed_layer_info():
    result = findings("gpt_ffn3071.json")
    assert "misaligned-gemm" not in result.checked
    assert any(reason.startswith("misaligned-gemm: needs a detailed --layer-info") for reason in result.skipped)


def test_reformat_finding_shows_formats_on_each_side():
    result = findings("convnet_reformats.json", "convnet_reformats.layers.json")
    assert result.rule_ids() == ["reformat"]
    assert "Row major linear FP32 -> Channel major HWC8 FP16" in result.findings[0].evidence[0]


def test_fp32_layers_in_a_reduced_precision_engine():
    result = findings("llama_fp32_ffn.json", "llama_fp32_ffn.layers.json")
    assert result.rule_ids() == ["fp32-layers"]
    finding = result.findings[0]
    assert sorted(finding.layers) == sorted(f"/layers.{b}/mlp/{p}/MatMul" for b in range(2) for p in ("up_proj", "down_proj"))
    assert "to-fp16" in finding.command


def test_unfused_attention():
    result = findings("bert_unfused_attention.json")
    assert result.rule_ids() == ["unfused-attention"]
    assert result.findings[0].details["blocks"] == 2


def test_tiny_kernels():
    result = findings("detector_tiny_kernels.json")
    assert result.rule_ids() == ["tiny-kernels"]
    assert "80 of 92 timed layers take under 3 us" in result.findings[0].summary


# ---------------------------------------------------------------- ... and stays silent where it should not


@pytest.mark.parametrize(
    "profile, layer_info",
    [
        ("resnet_int8.json", "resnet_int8.layers.json"),  # 3-channel first conv, CHW32 formats, 1000-way FC
        ("trt7_resnet.prof", None),
        ("no_count.json", None),
        ("concatenated_runs.json", None),
        ("trt10_myelin_kernels.json", None),  # LayerNorm already fused by Myelin, MHA kernel
        ("dla.json", None),
        ("bert_after.json", "bert_after.layers.json"),
        ("gpt_ffn3072.json", "gpt_ffn3072.trt11.layers.json"),  # the same GPT padded to 3072
    ],
)
def test_healthy_engines_have_no_findings(profile, layer_info):
    assert findings(profile, layer_info).findings == []


def test_thresholds_are_respected(tmp_path):


    # One decomposed LayerNorm (two layers) beside a big GEMM: just under the share threshold, then just over.
    ln = "/blk/LayerNorm"
    for share, expected in ((DECOMPOSED_NORM_MIN_SHARE * 0.9, []), (DECOMPOSED_NORM_MIN_SHARE * 1.1, ["decomposed-norm"])):
        norm_ms = share / (1 - share)  # against 1 ms of GEMM
        rows = [Row("/blk/fc/MatMul", 1.0), Row(f"{ln}/ReduceMean", norm_ms / 2), Row(f"PWN({ln}/Sub)", norm_ms / 2)]
        path = tmp_path / f"p{share}.json"
        path.write_text(profile_text(rows, count=10))
        ranking = rank(load_profile(path))
        assert advise(ranking, detailed=False).rule_ids() == expected

    # Tiny kernels: one fewer than the count threshold stays silent even at a large share.
    rows = [Row(f"/k/Mul_{i}", 0.001) for i in range(TINY_KERNELS_MIN_COUNT - 1)] + [Row("/k/Conv", 0.05)]
    path = tmp_path / "tiny.json"
    path.write_text(profile_text(rows, count=10))
    assert advise(rank(load_profile(path)), detailed=False).findings == []


def test_classifier_softmax_is_not_unfused_attention(tmp_path):


    rows = [Row("/features/Conv", 0.3), Row("/classifier/Gemm", 0.1), Row("/Softmax", 0.2), Row("/post/MatMul", 0.1)]
    path = tmp_path / "cls.json"
    path.write_text(profile_text(rows, count=10))
    assert advise(rank(load_profile(path)), detailed=False).findings == []


def test_engine_precision():
    analyzed = analyze_profile(FIXTURES / "resnet_int8.json", FIXTURES / "resnet_int8.layers.json")
    assert engine_precision(analyzed.ranking) == "INT8"


# ---------------------------------------------------------------- diff


def test_diff_reports_resolved_findings():
    before = findings("gpt_ffn3071.json", "gpt_ffn3071.trt10.layers.json")
    after = findings("gpt_ffn3072.json", "gpt_ffn3072.trt11.layers.json")
    change = diff_advice(before, after)
    assert [f.rule for f in change.resolved] == ["misaligned-gemm"]
    assert change.new == [] and change.remaining == []


def test_a_rule_that_could_not_run_after_resolves_nothing():
    before = findings("gpt_ffn3071.json", "gpt_ffn3071.trt10.layers.json")
    after = findings("gpt_ffn3072.json")  # no layer info: misaligned-gemm cannot be checked
    assert diff_advice(before, after).resolved == []


# ---------------------------------------------------------------- CLI


def test_cli_diff_verdict_names_the_resolved_finding(run_polygraphy):
    proc = run_polygraphy(
        "rank-profile", FIXTURES / "bert_after.json", "--layer-info", FIXTURES / "bert_after.layers.json",
        "--diff", FIXTURES / "bert_before.json", "--diff-layer-info", FIXTURES / "bert_before.layers.json", "--advise",
    )
    assert proc.returncode == 0, proc.stderr
    assert "1. decomposed normalization: resolved" in proc.stdout
    assert proc.stdout.rstrip().endswith(
        "after is 1.12x faster (3.838 -> 3.414 ms per iteration); LayerNorm family -0.42 ms: decomposed "
        "normalization resolved"
    )


def test_cli_json_carries_findings(run_polygraphy):
    proc = run_polygraphy(
        "rank-profile", FIXTURES / "gpt_ffn3071.json", "--layer-info", FIXTURES / "gpt_ffn3071.trt11.layers.json",
        "--advise", "--format", "json",
    )
    assert proc.returncode == 0, proc.stderr
    advice = json.loads(proc.stdout)["advice"]
    assert [f["rule"] for f in advice["findings"]] == ["misaligned-gemm"]
    assert advice["findings"][0]["details"]["dims"] == [3071]
    assert "fp32-layers" in advice["rules_checked"] and advice["rules_skipped"] == []


def test_cli_markdown_has_a_findings_section(run_polygraphy):
    proc = run_polygraphy("rank-profile", FIXTURES / "bert_unfused_attention.json", "--advise", "--format", "markdown")
    assert proc.returncode == 0, proc.stderr
    assert "### Findings (1)" in proc.stdout and "1. **attention not fused**" in proc.stdout


def test_cli_model_quotes_what_the_passes_would_do(run_polygraphy):
    model = REPO / "tests/passes/fuse_layernorm/fixtures/bert_block_opset14.onnx"
    proc = run_polygraphy(
        "rank-profile", FIXTURES / "bert_before.json", "--layer-info", FIXTURES / "bert_before.layers.json",
        "--advise", "--model", model,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"fuse-ln on {model}: would fuse 3 of 3 chain(s)" in proc.stdout
    aligned = REPO / "tests/passes/align_dims/fixtures/bert_ffn.onnx"
    proc = run_polygraphy(
        "rank-profile", FIXTURES / "gpt_ffn3071.json", "--layer-info", FIXTURES / "gpt_ffn3071.trt10.layers.json",
        "--advise", "--model", aligned,
    )
    assert proc.returncode == 0, proc.stderr
    assert "would pad 1 dim(s): /up/MatMul 191->192" in proc.stdout


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "x.onnx"], "--model is only used by --advise"),
        (["--advise", "--format", "csv"], "--advise has no CSV form"),
        (["--advise", "--model", "missing.onnx"], "missing.onnx: no such file"),
        (["--advise", "--model", str(FIXTURES / "bert_before.json")], "cannot read as an ONNX model"),
    ],
)
def test_cli_bad_input(run_polygraphy, extra, message):
    proc = run_polygraphy("rank-profile", FIXTURES / "bert_before.json", *extra)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stderr


def _advise_rows(tmp_path, rows, name="p.json"):
    path = tmp_path / name
    path.write_text(profile_text(rows, count=10))
    return advise(rank(load_profile(path)), detailed=False)


def test_decomposed_norm_in_generic_norm_modules_needs_the_statistics(tmp_path):
    # DETR's encoder calls its LayerNorms norm1/norm2: counted because the ops are a mean and a square root.
    detr = [Row("/transformer/encoder/layers.0/linear1/MatMul", 0.2)]
    for norm in ("norm1", "norm2"):
        m = f"/transformer/encoder/layers.0/{norm}"
        detr += [Row(f"{m}/ReduceMean", 0.02), Row(f"PWN({m}/Sub, {m}/Pow)", 0.02), Row(f"{m}/ReduceMean_1", 0.02),
                 Row(f"PWN(PWN({m}/Add, {m}/Sqrt), {m}/Div)", 0.02)]
    result = _advise_rows(tmp_path, detr)
    assert result.rule_ids() == ["decomposed-norm"]
    assert result.findings[0].details["modules"] == [f"/transformer/encoder/layers.0/{n}" for n in ("norm1", "norm2")]
    # A module called norm whose layers compute no statistics (a BatchNorm turned into scale layers) is not one.
    bn = [Row("/backbone/conv/Conv", 0.2), Row("/backbone/norm/Mul", 0.05), Row("/backbone/norm/Add", 0.05)]
    assert _advise_rows(tmp_path, bn, "bn.json").findings == []


def test_decomposed_norm_without_module_names(tmp_path):
    # Older exporters name nodes by op and number only.
    rows = [Row("MatMul_20", 0.2), Row("ReduceMean_23", 0.02), Row("PWN(Sub_24, Pow_26)", 0.02),
            Row("ReduceMean_27", 0.02), Row("PWN(PWN(Add_29, Sqrt_30), Div_31)", 0.02), Row("MatMul_34", 0.2)]
    result = _advise_rows(tmp_path, rows)
    assert result.rule_ids() == ["decomposed-norm"]
    assert result.findings[0].details["layer_count"] == 4
    # Squeeze-and-excitation: a ReduceMean (global pooling) with no second mean and no square root.
    se = [Row("Conv_10", 0.2), Row("ReduceMean_11", 0.05), Row("Conv_12", 0.05), Row("PWN(HardSigmoid_13, Mul_14)", 0.05)]
    assert _advise_rows(tmp_path, se, "se.json").findings == []

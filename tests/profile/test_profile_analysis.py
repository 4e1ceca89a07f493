"""Layer-info join, ranking, grouping, sanity notes and diff on the committed fixtures."""

import json
from pathlib import Path

import pytest
from trtexec_format import Row, profile_text

from polygraphy_ext.profile import ProfileError, analyze_profile, diff_profiles, group, load_layer_info, load_profile
from polygraphy_ext.profile.diff import normalize_name
from polygraphy_ext.profile.families import classify
from polygraphy_ext.profile.grouping import name_prefix
from polygraphy_ext.profile.render import summary_line
from polygraphy_ext.profile.layer_info import join_layer_info, precision_of

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_detailed_layer_info_fields():
    info = load_layer_info(FIXTURES / "bert_after.layers.json")
    assert info.detailed and len(info.layers) == 21
    quantize = next(layer for layer in info.layers if "QuantizeLinear" in layer.name)
    assert (quantize.layer_type, quantize.precision) == ("Quantize", "INT8")
    gemm = next(layer for layer in info.layers if layer.name.startswith("/encoder/layer.0/intermediate"))
    assert gemm.tactic.startswith("sm86_xmma_gemm")
    assert gemm.precision == "FP16"
    assert gemm.signature[0] == "CaskGemmConvolution"


def test_names_only_layer_info_joins_by_name():
    result = analyze_profile(FIXTURES / "bert_after.json", FIXTURES / "bert_after.names_only.layers.json")
    assert result.layer_info.detailed is False
    assert result.ranking.join.coverage == 1.0
    assert result.ranking.join.matched_by == {"name": 21, "position": 0}
    assert "layer info matched 21/21 profile layers (100%: 21 by name, 0 by position)" in result.notes[0]


def test_position_fills_gaps_between_name_matches(tmp_path):
    profile_path = tmp_path / "p.json"
    profile_path.write_text(profile_text([Row("a", 1), Row("b renamed", 1), Row("c", 1), Row("extra", 1)], count=1))
    info_path = tmp_path / "l.json"
    info_path.write_text(json.dumps({"Layers": ["a", "b", "c"], "Bindings": []}))
    join = join_layer_info(load_profile(profile_path), load_layer_info(info_path))
    assert join.by_profile_index[1].name == "b"
    assert join.matched_by == {"name": 2, "position": 1}
    assert join.unmatched_profile == ["extra"]
    assert join.unmatched_info == []


def test_layer_info_that_matches_nothing_is_an_error(tmp_path):
    info_path = tmp_path / "other.json"
    info_path.write_text(json.dumps({"Layers": ["x", "y", "z"], "Bindings": []}))
    with pytest.raises(ProfileError, match=r"matches none of the 7 layers of .*trt7_resnet.prof"):
        analyze_profile(FIXTURES / "trt7_resnet.prof", info_path)


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"Bindings": []}', 'expected trtexec --exportLayerInfo output (an object with a "Layers" list)'),
        ('{"Layers": []}', "lists no layers"),
        ('{"Layers": ["a", {"Name": "b"}]}', "layer 2 is neither a name (layer_names_only) nor an object (detailed)"),
        ('{"Layers": [{"LayerType": "Shuffle"}]}', 'layer 1 has no "Name" string'),
        ("5", 'an object with a "Layers" list), found a number'),
        ('"Layers"', 'an object with a "Layers" list), found a string'),
        ('{"Layers": {"Name": "a"}}', "found an object without it"),
    ],
)
def test_bad_layer_info(tmp_path, text, message):
    path = tmp_path / "layers.json"
    path.write_text(text)
    with pytest.raises(ProfileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_layer_info(path)


def test_precision_names():
    assert precision_of("Row major linear FP16 format") == "FP16"
    assert precision_of("Thirty-two wide channel vectorized row major Int8 format.") == "INT8"
    assert precision_of("Row major linear Float") == "FP32"
    assert precision_of("N/A due to dynamic shapes") is None


def test_ranking_shares_cumulative_and_ninety_percent_line():
    ranking = analyze_profile(FIXTURES / "bert_before.json").ranking
    shares = [row.share for row in ranking.rows]
    assert shares == sorted(shares, reverse=True)
    assert sum(shares) == pytest.approx(1.0)
    assert ranking.rows[-1].cumulative == pytest.approx(1.0)
    top = ranking.rows[0]
    assert top.layer.name.startswith("{ForeignNode[/encoder/layer.0/attention")
    assert top.share == pytest.approx(0.95 / 3.838, rel=1e-3)
    assert len(ranking.zero_time_rows) == 2
    n = ranking.layers_for_share(0.9)
    assert ranking.rows[n - 1].cumulative >= 0.9 > ranking.rows[n - 2].cumulative
    assert ranking.total_average_ms == pytest.approx(3.838)


def test_group_by_family_prefix_and_detailed_keys():
    result = analyze_profile(FIXTURES / "bert_before.json", FIXTURES / "bert_before.layers.json")
    families = {g.key: g for g in group(result.ranking, "family", detailed_info=True)}
    assert families["Myelin region"].share == pytest.approx(1.86 / 3.838, rel=1e-3)
    assert families["LayerNorm"].layers == 16
    assert sum(g.share for g in families.values()) == pytest.approx(1.0)

    prefixes = {g.key: g for g in group(result.ranking, "prefix:2")}
    # 12 per block: the 4 GEMMs, the Q/DQ and the 8 unfused LayerNorm pieces, PWN(...)-wrapped ones included.
    assert prefixes["encoder/layer.0"].layers == prefixes["encoder/layer.1"].layers == 12
    assert not [key for key in prefixes if "PWN" in key]
    assert "(Myelin region)" in prefixes
    assert {g.key for g in group(result.ranking, "prefix:1")} >= {"encoder", "pooler", "embeddings"}

    types = {g.key for g in group(result.ranking, "type", detailed_info=True)}
    assert {"Myelin", "CaskGemmConvolution", "PointWiseV2", "Quantize"} <= types
    precisions = {g.key for g in group(result.ranking, "precision", detailed_info=True)}
    assert precisions == {"FP16", "INT8"}

    tactics = {g.key: g for g in group(result.ranking, "tactic", detailed_info=True)}
    gemm_tactic = "sm86_xmma_gemm_f16f16_f16f32_f32_nn_n_tilesize128x128x32_stage4"
    assert set(tactics) == {gemm_tactic, "(none)"}
    assert tactics[gemm_tactic].layers == 9  # make_fixtures.py gives it to every layer whose name has "MatMul"


@pytest.mark.parametrize(
    "name, depth, prefix",
    [
        ("/encoder/layer.0/attention/self/query/MatMul", 2, "encoder/layer.0"),
        ("/encoder/layer.0/attention/self/query/MatMul", 9, "encoder/layer.0/attention/self/query"),
        ("/encoder/layer.0/output/dense/MatMul + /encoder/layer.0/output/dense/Add", 3, "encoder/layer.0/output"),
        ("PWN(/encoder/layer.1/output/LayerNorm/Sub)", 2, "encoder/layer.1"),
        ("PWN(PWN(PWN(/enc/l.3/LN/Add, /enc/l.3/LN/Sqrt), /enc/l.3/LN/Div), PWN(/enc/l.3/LN/Mul))", 2, "enc/l.3"),
        ("/blk/Conv\x1e/blk/Relu", 1, "blk"),
        ("backbone.layer1.conv", 1, "backbone"),
        ("(Unnamed Layer* 97) [Shuffle]", 2, "(unnamed layers)"),
        ("PWN((Unnamed Layer* 9) [ElementWise])", 2, "(unnamed layers)"),
        ("Tanh", 2, "Tanh"),
        ("{ForeignNode[/a/MatMul.../a/Softmax]}", 2, "(Myelin region)"),
        ("__myl_MulAddErfMulMul_myl0_7", 2, "(Myelin kernels)"),
    ],
)
def test_name_prefix(tmp_path, name, depth, prefix):
    path = tmp_path / "p.json"
    path.write_text(profile_text([Row(name, 1.0)], count=1))
    assert name_prefix(analyze_profile(path).ranking.rows[0], depth) == prefix


def test_group_by_needs_detailed_info_and_valid_key():
    ranking = analyze_profile(FIXTURES / "bert_before.json").ranking
    with pytest.raises(ProfileError, match="--group-by tactic needs --layer-info"):
        group(ranking, "tactic")
    with pytest.raises(ProfileError, match="unknown key"):
        group(ranking, "colour")
    with pytest.raises(ProfileError, match="depth must be a positive integer"):
        group(ranking, "prefix:x")


def test_sanity_notes():
    notes = " | ".join(analyze_profile(FIXTURES / "concatenated_runs.json", run=1).notes)
    assert "the file holds 3 profile runs; ranked run 1" in notes
    assert "1 layer(s) whose timeMs is not count x averageMs" in notes  # run 1 was edited
    assert "(the last)" in " ".join(analyze_profile(FIXTURES / "concatenated_runs.json").notes)

    dla = " | ".join(analyze_profile(FIXTURES / "dla.json").notes)
    assert "2 layer(s) run on or transfer to DLA" in dla
    assert "Myelin region(s) {ForeignNode[...]} take 86%" in dla and "Nsight Systems" in dla

    assert 'no {"count": N} element' in " ".join(analyze_profile(FIXTURES / "no_count.json").notes)
    assert "unescaped quotes/backslashes" in " ".join(analyze_profile(FIXTURES / "unescaped_names.json").notes)


def test_percentage_sum_and_aux_stream_notes(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('[{"count": 1}, {"name": "a", "timeMs": 1, "averageMs": 1, "percentage": 40},'
                    ' {"name": "b", "timeMs": 1, "averageMs": 1, "percentage": 40}]')
    info = tmp_path / "l.json"
    info.write_text(json.dumps({"Layers": [{"Name": "a", "StreamId": 0}, {"Name": "b", "StreamId": 1}]}))
    notes = " | ".join(analyze_profile(path, info).notes)
    assert "percentages in the file add up to 80.0%" in notes
    assert "auxiliary streams [1]" in notes


def test_all_zero_profile_ranks_nothing(tmp_path):
    path = tmp_path / "zero.json"
    path.write_text(profile_text([Row("a", 0.0), Row("b", 0.0)], count=5))
    result = analyze_profile(path)
    assert result.ranking.layers_for_share(0.9) == 0
    assert summary_line(result.ranking) == "no layer took any time (2 layers with zero time)"
    assert "every layer has zero time: nothing to rank" in result.notes


def test_summary_line_counts_in_the_singular(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(profile_text([Row("big", 1.0), Row("small", 0.01), Row("idle", 0.0)], count=1))
    assert summary_line(analyze_profile(path).ranking) == (
        "1 layer makes 90% of the time (of 2 timed layers, 1 with zero time); total 1.0100 ms per iteration"
    )


def test_dla_layers_from_layer_info_and_other_shape_profiles(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(profile_text([Row("conv", 1.0), Row("head", 0.2)], count=1))
    info = tmp_path / "l.json"
    info.write_text(json.dumps({"Layers": [
        {"Name": "conv", "LayerType": "DLA", "Inputs": [], "Outputs": []},
        {"Name": "head", "LayerType": "CaskConvolution", "Inputs": [], "Outputs": []},
        {"Name": "conv [profile 1]", "LayerType": "DLA", "Inputs": [], "Outputs": []},
    ]}))
    notes = " | ".join(analyze_profile(path, info).notes)
    assert "1 layer(s) run on or transfer to DLA" in notes
    assert "1 layer-info entries matched no profile layer (1 of them belong to other optimization profiles" in notes


def test_layers_fused_with_control_separators_are_classified_by_their_pieces():
    # TensorRT 8.6+ may join fused layer names with \x1e instead of " + ".
    assert classify("/blk/Conv\x1e/blk/Relu").family == "gemm/conv"
    assert classify("/blk/Conv\x1e/blk/Relu").id == "gemm-conv-op"


def test_diff_matches_by_name_normalized_name_and_signature():
    before = analyze_profile(FIXTURES / "bert_before.json", FIXTURES / "bert_before.layers.json")
    after = analyze_profile(FIXTURES / "bert_after.json", FIXTURES / "bert_after.layers.json")
    diff = diff_profiles(before.ranking, after.ranking)
    assert diff.matched_by == {"name": 15, "normalized": 1, "signature": 1, "added": 4, "removed": 16}
    renamed = next(d for d in diff.layers if d.matched_by == "normalized")
    assert (renamed.before_name, renamed.name) == ("/pooler/dense/Gemm_12", "/pooler/dense/Gemm_13")
    by_signature = next(d for d in diff.layers if d.matched_by == "signature")
    assert (by_signature.before_name, by_signature.name) == ("(Unnamed Layer* 97) [Shuffle]", "/pooler/Reshape")
    families = {f.family: f for f in diff.families}
    assert families["layernorm"].delta_ms == pytest.approx(-0.424)
    assert diff.share_of_change(families["layernorm"].delta_ms) == pytest.approx(1.0)
    assert diff.verdict() == "after is 1.12x faster (3.838 -> 3.414 ms per iteration); LayerNorm family -0.42 ms"


def test_diff_without_layer_info_cannot_use_signatures():
    before = analyze_profile(FIXTURES / "bert_before.json")
    after = analyze_profile(FIXTURES / "bert_after.json")
    diff = diff_profiles(before.ranking, after.ranking)
    assert diff.matched_by["signature"] == 0
    assert {d.name for d in diff.added} >= {"/pooler/Reshape"}


def test_diff_verdict_slower_and_same(tmp_path):
    fast, slow = tmp_path / "fast.json", tmp_path / "slow.json"
    fast.write_text(profile_text([Row("conv", 1.0), Row("relu", 0.1)]))
    slow.write_text(profile_text([Row("conv", 1.5), Row("relu", 0.1)]))
    fast_r, slow_r = analyze_profile(fast).ranking, analyze_profile(slow).ranking
    diff = diff_profiles(fast_r, slow_r)
    assert diff.verdict().startswith("after is 1.45x slower")
    conv = next(d for d in diff.layers if d.name == "conv")
    assert (conv.delta_ms, conv.ratio) == (pytest.approx(0.5), pytest.approx(1.5))
    assert diff.share_of_change(conv.delta_ms) == pytest.approx(1.0)
    relu = next(d for d in diff.layers if d.name == "relu")
    assert relu.ratio == pytest.approx(1.0) and diff.layers[0] is conv  # largest change first
    assert diff_profiles(fast_r, fast_r).verdict().startswith("after is as fast as before")


def test_normalize_name():
    assert normalize_name("/layer.3/Conv_12") == normalize_name("/layer.3/Conv_13")
    assert normalize_name("__myl_Add_0x1f2e") == normalize_name("__myl_Add_0xab")
    assert normalize_name("/a/Conv") != normalize_name("/a/MatMul")

"""Whole graphs: If/Loop bodies and local functions are upgraded too, refusals change nothing, fuse-ln uses it."""

from pathlib import Path

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest
from onnx import helper
from polygraphy.backend.onnx import InferShapes

from polygraphy_ext.numerics import compare_models
from polygraphy_ext.passes import fuse_layernorm
from polygraphy_ext.passes.opset_upgrade import OpsetUpgradeError, plan_default_opset_upgrade, upgrade_default_opset
from upgrade_checks import assert_upgrades_exactly, model, upgrade

FUSE_LN_FIXTURES = Path(__file__).resolve().parent.parent / "fuse_layernorm" / "fixtures"
X = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
node = helper.make_node


def _if_model(opset):
    then_branch = helper.make_graph(
        [node("Unsqueeze", ["x"], ["u"], axes=[0]), node("Softmax", ["u"], ["t"], axis=2)],
        "then",
        [],
        [helper.make_tensor_value_info("t", onnx.TensorProto.FLOAT, [1, 2, 3, 4])],
    )
    else_branch = helper.make_graph(
        [node("ReduceSum", ["x"], ["r"], axes=[1], keepdims=1), node("Unsqueeze", ["r"], ["e"], axes=[0])],
        "else",
        [],
        [helper.make_tensor_value_info("e", onnx.TensorProto.FLOAT, [1, 2, 1, 4])],
    )
    nodes = [node("If", ["cond"], ["y"], then_branch=then_branch, else_branch=else_branch)]
    return model(nodes, {"x": X, "cond": np.array(True)}, ["y"], opset)


@pytest.mark.parametrize("cond", [True, False])
def test_if_branches_are_upgraded(cond):
    upgraded, report = assert_upgrades_exactly(_if_model(11), 17, {"x": X, "cond": np.array(cond)})
    assert report.per_op() == {"ReduceSum": 1, "Softmax": 1, "Unsqueeze": 2}
    assert {entry.where for entry in report.rewritten} == {"subgraph then", "subgraph else"}
    # Softmax over [1, 2, 3, 4] at axis 2 coerces to 2-D: it is wrapped inside the branch.
    branch = next(a.g for a in upgraded.graph.node[0].attribute if a.name == "then_branch")
    assert [n.op_type for n in branch.node].count("Flatten") == 1


def test_loop_body_is_upgraded():
    body = helper.make_graph(
        [
            node("Identity", ["cond_in"], ["cond_out"]),
            node("Unsqueeze", ["acc_in"], ["wide"], axes=[0]),
            node("ReduceSum", ["wide"], ["acc_out"], axes=[0], keepdims=0),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", onnx.TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", onnx.TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_in", onnx.TensorProto.FLOAT, [2, 3, 4]),
        ],
        [
            helper.make_tensor_value_info("cond_out", onnx.TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_out", onnx.TensorProto.FLOAT, [2, 3, 4]),
        ],
    )
    nodes = [node("Loop", ["trips", "", "x"], ["y"], body=body)]
    original = model(nodes, {"x": X, "trips": np.array(3, np.int64)}, [("y", np.float32, [2, 3, 4])], 11)
    _, report = assert_upgrades_exactly(original, 18, {"x": X, "trips": np.array(3, np.int64)})
    assert report.per_op() == {"ReduceSum": 1, "Unsqueeze": 1}


def test_local_functions_are_upgraded():
    function = helper.make_function(
        "local", "SqueezeSoftmax", ["a"], ["b"],
        [node("Squeeze", ["a"], ["s"], axes=[0]), node("Softmax", ["s"], ["b"], axis=1)],
        [helper.make_opsetid("", 11)],
    )
    nodes = [node("SqueezeSoftmax", ["x"], ["y"], domain="local")]
    x = X[:1]
    original = model(nodes, {"x": x}, [("y", np.float32, [3, 4])], 11, functions=[function])
    upgraded, report = assert_upgrades_exactly(original, 17, {"x": x})
    assert report.per_op() == {"Softmax": 1, "Squeeze": 1}
    assert [(o.domain, o.version) for o in upgraded.functions[0].opset_import] == [("", 17)]


def test_a_refusal_names_op_node_and_reason_in_one_line_and_changes_nothing():
    nodes = [
        node("Unsqueeze", ["x"], ["u"], axes=[0], name="fine"),
        node("MaxPool", ["x"], ["p"], kernel_shape=[2], strides=[2], auto_pad="SAME_LOWER", name="pool_a"),
        node("MaxPool", ["x"], ["q"], kernel_shape=[3], strides=[3], auto_pad="SAME_UPPER", name="pool_b"),
    ]
    original = model(nodes, {"x": X}, ["u", "p", "q"], 11)
    graph = gs.import_onnx(original)
    before = gs.export_onnx(graph, do_type_check=False).SerializeToString()
    with pytest.raises(OpsetUpgradeError) as err:
        upgrade_default_opset(graph, 17)
    message = str(err.value)
    assert "\n" not in message and "opset 11 to 17" in message
    assert "MaxPool (pool_a)" in message and "MaxPool (pool_b)" in message and "fine" not in message
    assert gs.export_onnx(graph, do_type_check=False).SerializeToString() == before


def test_nodes_the_caller_removes_are_not_planned():
    original = model([node("MaxPool", ["x"], ["p"], kernel_shape=[2], strides=[2], auto_pad="SAME_LOWER")], {"x": X}, ["p"], 11)
    graph = gs.import_onnx(original)
    assert not plan_default_opset_upgrade(graph, 17).ok
    assert plan_default_opset_upgrade(graph, 17, leaving={id(graph.nodes[0])}).ok


def test_models_below_opset_7_are_refused_and_lower_targets_plan_nothing():
    original = model([node("Relu", ["x"], ["y"])], {"x": X}, ["y"], 6)
    with pytest.raises(OpsetUpgradeError, match="upgrades start at opset 7"):
        upgrade(original, 17)
    graph = gs.import_onnx(model([node("Relu", ["x"], ["y"])], {"x": X}, ["y"], 13))
    report = upgrade_default_opset(graph, 11)
    assert (report.opset_before, report.opset_after, graph.opset) == (13, 13, 13)
    assert report.summary() == "opset 13 kept"


def test_report_counts_per_op():
    _, report = upgrade(_if_model(11), 17)
    assert report.summary() == "opset 11 -> 17: rewrote 4 node(s) (ReduceSum 1, Softmax 1, Unsqueeze 2)"
    assert report.to_dict()["rewritten_per_op"] == {"ReduceSum": 1, "Softmax": 1, "Unsqueeze": 2}


def _fixture(name):
    return InferShapes(onnx.load(str(FUSE_LN_FIXTURES / name)))()


@pytest.mark.parametrize("name, opset", [("bert_block_opset11.onnx", 11), ("detr_encoder_opset12.onnx", 12)])
def test_old_opset_exports_upgrade_exactly_and_fuse_natively(name, opset):
    original = _fixture(name)
    upgraded, report = upgrade(original, 17)
    onnx.checker.check_model(upgraded, full_check=True)
    assert report.per_op() == {"Softmax": 1, "Split": 1, "Squeeze": 3}
    result = compare_models(original, upgraded, atol=0, rtol=0)
    assert result.ok, result.summary()

    graph = gs.import_onnx(original)
    fusion = fuse_layernorm(graph)
    assert (fusion.opset_before, fusion.opset_after, len(fusion.fused)) == (opset, 17, 3)
    assert "rewrote 5 node(s)" in fusion.summary()
    assert fusion.to_dict()["opset_upgrade"]["rewritten_per_op"] == {"Softmax": 1, "Split": 1, "Squeeze": 3}


@pytest.mark.slow
def test_natively_fused_opset_11_bert_builds_with_tensorrt_rtx(build_engine):
    graph = gs.import_onnx(_fixture("bert_block_opset11.onnx"))
    assert len(fuse_layernorm(graph).fused) == 3
    fused = gs.export_onnx(graph, do_type_check=False)
    assert [n.op_type for n in fused.graph.node].count("LayerNormalization") == 3
    assert len(build_engine(fused.SerializeToString())) > 0


@pytest.mark.slow
def test_upgraded_old_ops_build_with_tensorrt_rtx(build_engine):
    """Resize from Upsample-7, moved attributes and a wrapped Softmax parse and build for SM89."""
    image = np.random.default_rng(2).standard_normal((1, 2, 4, 4)).astype(np.float32)
    nodes = [
        node("Upsample", ["x"], ["up"], mode="nearest", scales=[1.0, 1.0, 2.0, 2.0]),
        node("Softmax", ["up"], ["soft"], axis=1),
        node("ReduceMean", ["soft"], ["mean"], axes=[3], keepdims=0),
        node("Unsqueeze", ["mean"], ["wide"], axes=[3]),
        node("Pad", ["wide"], ["y"], pads=[0, 0, 1, 0, 0, 0, 1, 0], value=0.5),
    ]
    upgraded, report = assert_upgrades_exactly(model(nodes, {"x": image}, ["y"], 7), 20, {"x": image})
    assert set(report.per_op()) == {"Resize", "Softmax", "ReduceMean", "Unsqueeze", "Pad"}
    assert len(build_engine(upgraded.SerializeToString())) > 0

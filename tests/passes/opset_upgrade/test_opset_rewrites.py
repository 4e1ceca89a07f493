"""Each rewritten operator: a model at the old opset, upgraded, passes the full checker and onnxruntime gives
bit-identical outputs; nodes with no exact new form are refused in one line."""

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest
from onnx import helper

from polygraphy_ext.passes.opset_upgrade import OpsetUpgradeError, plan_default_opset_upgrade, upgrade_default_opset
from upgrade_checks import assert_upgrades_exactly, model, run, upgrade

RNG = np.random.default_rng(0)
X234 = RNG.standard_normal((2, 3, 4)).astype(np.float32)
IMAGE = RNG.standard_normal((1, 2, 4, 5)).astype(np.float32)
node = helper.make_node


def _ops(proto):
    return [n.op_type for n in proto.graph.node]


def _attrs(proto, op):
    found = next(n for n in proto.graph.node if n.op_type == op)
    return {a.name: helper.get_attribute_value(a) for a in found.attribute}


REDUCE_OPS = ["ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin",
              "ReduceProd", "ReduceSum", "ReduceSumSquare"]


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("axes", [[0, -1], None])
def test_reduce_axes_become_an_input(op, axes):
    attrs = {"keepdims": 0} | ({"axes": axes} if axes is not None else {})
    original = model([node(op, ["x"], ["y"], **attrs)], {"x": np.abs(X234) + 0.5}, ["y"], 11)
    upgraded, report = assert_upgrades_exactly(original, 18, {"x": np.abs(X234) + 0.5})
    reduce = upgraded.graph.node[0]
    assert "axes" not in _attrs(upgraded, op)
    assert len(reduce.input) == (2 if axes is not None else 1)
    assert report.per_op() == ({op: 1} if axes is not None else {})


def test_reduce_mean_at_13_moves_axes_only_when_crossing_18():
    original = model([node("ReduceMean", ["x"], ["y"], axes=[1])], {"x": X234}, ["y"], 13)
    upgraded, report = assert_upgrades_exactly(original, 17, {"x": X234})
    assert _attrs(upgraded, "ReduceMean") == {"axes": [1]} and report.rewritten == []
    upgraded, report = assert_upgrades_exactly(original, 18, {"x": X234})
    assert "axes" not in _attrs(upgraded, "ReduceMean") and report.per_op() == {"ReduceMean": 1}


def test_squeeze_and_unsqueeze_axes_become_inputs():
    x = RNG.standard_normal((2, 1, 3, 1)).astype(np.float32)
    nodes = [
        node("Squeeze", ["x"], ["s"], axes=[1]),
        node("Squeeze", ["x"], ["all"]),
        node("Unsqueeze", ["s"], ["y"], axes=[0, -1]),
    ]
    original = model(nodes, {"x": x}, ["y", "all"], 11)
    upgraded, report = assert_upgrades_exactly(original, 13, {"x": x})
    assert report.per_op() == {"Squeeze": 1, "Unsqueeze": 1}
    assert all("axes" not in {a.name for a in n.attribute} for n in upgraded.graph.node)


def test_split_sizes_become_an_input_and_equal_splits_state_num_outputs():
    x = RNG.standard_normal((2, 6)).astype(np.float32)
    nodes = [node("Split", ["x"], ["a", "b"], axis=1, split=[2, 4]), node("Split", ["x"], ["c", "d", "e"], axis=-1)]
    original = model(nodes, {"x": x}, ["a", "b", "c", "d", "e"], 11)
    upgraded, report = assert_upgrades_exactly(original, 18, {"x": x})
    sized, equal = upgraded.graph.node
    assert len(sized.input) == 2 and _attrs(upgraded, "Split") == {"axis": 1}
    assert {a.name: helper.get_attribute_value(a) for a in equal.attribute} == {"axis": -1, "num_outputs": 3}
    upgraded_13, _ = assert_upgrades_exactly(original, 13, {"x": x})
    assert all(a.name != "num_outputs" for n in upgraded_13.graph.node for a in n.attribute)


def test_topk_k_becomes_an_input():
    original = model([node("TopK", ["x"], ["v", "i"], k=2, axis=1)], {"x": X234}, ["v", "i"], 9)
    upgraded, report = assert_upgrades_exactly(original, 11, {"x": X234})
    assert len(upgraded.graph.node[0].input) == 2 and report.per_op() == {"TopK": 1}


def test_slice_attributes_become_inputs():
    original = model([node("Slice", ["x"], ["y"], starts=[1, -3], ends=[1000, -1], axes=[0, 2])], {"x": X234}, ["y"], 9)
    upgraded, _ = assert_upgrades_exactly(original, 13, {"x": X234})
    assert len(upgraded.graph.node[0].input) == 4 and not upgraded.graph.node[0].attribute


def test_slice_without_axes_keeps_the_axes_input_absent():
    original = model([node("Slice", ["x"], ["y"], starts=[1], ends=[2])], {"x": X234}, ["y"], 9)
    upgraded, _ = assert_upgrades_exactly(original, 10, {"x": X234})
    assert len(upgraded.graph.node[0].input) == 3


@pytest.mark.parametrize("mode, value", [("constant", 1.5), ("constant", 0.0), ("reflect", 0.0), ("edge", 0.0)])
def test_pad_attributes_become_inputs(mode, value):
    attrs = {"pads": [0, 1, 0, 0, 2, 1], "mode": mode} | ({"value": value} if value else {})
    original = model([node("Pad", ["x"], ["y"], **attrs)], {"x": X234}, ["y"], 10)
    upgraded, _ = assert_upgrades_exactly(original, 18, {"x": X234})
    assert len(upgraded.graph.node[0].input) == (3 if value else 2)
    assert _attrs(upgraded, "Pad") == {"mode": mode.encode()}


@pytest.mark.parametrize("bounds", [{"min": -0.5, "max": 0.25}, {"max": 0.0}, {"min": 0.1}])
def test_clip_bounds_become_typed_inputs(bounds):
    original = model([node("Clip", ["x"], ["y"], **bounds)], {"x": X234}, ["y"], 10)
    upgraded, _ = assert_upgrades_exactly(original, 13, {"x": X234})
    assert not upgraded.graph.node[0].attribute
    assert [bool(i) for i in upgraded.graph.node[0].input[1:]] == ["min" in bounds, "max" in bounds][: len(upgraded.graph.node[0].input) - 1]


@pytest.mark.parametrize("opset", [9, 10])
def test_dropout_ratio_becomes_an_input_and_an_unused_mask_is_dropped(opset):
    mask_type = np.float32 if opset < 10 else np.bool_
    nodes = [node("Dropout", ["x"], ["d", "mask"], ratio=0.3), node("Relu", ["d"], ["y"])]
    original = model(nodes, {"x": X234}, ["y"], opset)
    upgraded, report = assert_upgrades_exactly(original, 13, {"x": X234})
    assert list(upgraded.graph.node[0].output) == ["d"] and len(upgraded.graph.node[0].input) == 2
    used = model([node("Dropout", ["x"], ["y", "mask"])], {"x": X234}, ["y", ("mask", mask_type, [2, 3, 4])], opset)
    with pytest.raises(OpsetUpgradeError, match="mask output is used"):
        upgrade(used, 13)


SOFTMAX_CASES = {
    # name: (input shape, axis attribute or None, wrapped in Flatten/Reshape)
    "last-axis": ([2, 3, 4], 2, False),
    "negative-last": ([2, 3, 4], -1, False),
    "default-axis-1-of-3d": ([2, 3, 4], None, True),
    "middle-axis": ([2, 3, 4], 1, True),
    "negative-middle": ([2, 3, 4], -2, True),
    "axis-0": ([2, 3, 4], 0, True),
    "trailing-ones": ([2, 3, 1, 1], 1, False),
    "dynamic-dims": (["N", 3, 4], 1, True),
}


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("case", sorted(SOFTMAX_CASES))
def test_softmax_family_keeps_its_2d_coercion(op, case):
    shape, axis, wrapped = SOFTMAX_CASES[case]
    concrete = [d if isinstance(d, int) else 2 for d in shape]
    x = RNG.standard_normal(concrete).astype(np.float32)
    attrs = {"axis": axis} if axis is not None else {}
    inputs = {"x": x}
    original = model([node(op, ["x"], ["y"], **attrs)], inputs, ["y"], 11)
    if not all(isinstance(d, int) for d in shape):
        original.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
        original = onnx.shape_inference.infer_shapes(original)
    upgraded, report = assert_upgrades_exactly(original, 17, inputs)
    assert (_ops(upgraded).count("Flatten") == 1) == wrapped
    if not wrapped:
        assert _ops(upgraded) == [op]
    if case == "dynamic-dims":
        assert_upgrades_exactly(original, 17, {"x": RNG.standard_normal((5, 3, 4)).astype(np.float32)})


def test_softmax_wrap_is_refused_below_opset_14_for_unknown_shapes():
    original = model([node("Softmax", ["x"], ["y"], axis=1)], {"x": X234}, ["y"], 11)
    original.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    plan = plan_default_opset_upgrade(gs.import_onnx(original), 13)
    assert [r.op for r in plan.refusals] == ["Softmax"] and "opset 14" in plan.refusals[0].reason


@pytest.mark.parametrize("target", [10, 11, 13, 19])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample_7_becomes_resize(mode, target):
    original = model([node("Upsample", ["x"], ["y"], mode=mode, scales=[1.0, 1.0, 2.0, 3.0])], {"x": IMAGE}, ["y"], 7)
    upgraded, report = assert_upgrades_exactly(original, target, {"x": IMAGE})
    assert _ops(upgraded) == ["Resize"] and report.per_op() == {"Resize": 1}


def test_upsample_7_to_9_moves_scales_to_an_input():
    original = model([node("Upsample", ["x"], ["y"], scales=[1.0, 1.0, 2.0, 2.0])], {"x": IMAGE}, ["y"], 7)
    upgraded, _ = assert_upgrades_exactly(original, 9, {"x": IMAGE})
    assert _ops(upgraded) == ["Upsample"] and len(upgraded.graph.node[0].input) == 2


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample_9_with_constant_scales_becomes_resize(mode):
    scales = np.array([1.0, 1.0, 1.5, 2.5], np.float32)
    original = model([node("Upsample", ["x", "s"], ["y"], mode=mode)], {"x": IMAGE}, ["y"], 9, {"s": scales})
    assert_upgrades_exactly(original, 17, {"x": IMAGE})


def test_nearest_upsample_with_runtime_scales_is_refused():
    scales = np.array([1.0, 1.0, 2.0, 2.0], np.float32)
    original = model([node("Upsample", ["x", "s"], ["y"])], {"x": IMAGE, "s": scales}, ["y"], 9)
    with pytest.raises(OpsetUpgradeError, match="non-constant scales"):
        upgrade(original, 17)
    linear = model([node("Upsample", ["x", "s"], ["y"], mode="linear")], {"x": IMAGE, "s": scales}, ["y"], 9)
    assert_upgrades_exactly(linear, 17, {"x": IMAGE, "s": scales})


@pytest.mark.parametrize("scales", [[1.0, 1.0, 0.5, 0.6], [1.0, 1.0, 2.0, 1.5]], ids=["down", "up"])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_10_gets_roi_and_its_old_coordinate_modes(mode, scales):
    s = np.array(scales, np.float32)
    x = RNG.standard_normal((1, 2, 7, 9)).astype(np.float32)
    original = model([node("Resize", ["x", "s"], ["y"], mode=mode)], {"x": x}, ["y"], 10, {"s": s})
    for target in (11, 13, 18):
        upgraded, _ = assert_upgrades_exactly(original, target, {"x": x})
        assert len(upgraded.graph.node[0].input) == 3


def test_scatter_becomes_scatter_elements():
    data = np.zeros((3, 4), np.float32)
    indices = np.array([[1, 0, 3], [2, 3, 0]], np.int64)
    updates = RNG.standard_normal((2, 3)).astype(np.float32)
    nodes = [node("Scatter", ["data", "indices", "updates"], ["y"], axis=1)]
    original = model(nodes, {"data": data, "indices": indices, "updates": updates}, ["y"], 9)
    upgraded, _ = assert_upgrades_exactly(original, 16, {"data": data, "indices": indices, "updates": updates})
    assert _ops(upgraded) == ["ScatterElements"]


def _batch_norm_inputs():
    return {n: RNG.uniform(0.5, 1.5, 2).astype(np.float32) for n in ("scale", "bias", "mean", "var")}


def test_batch_normalization_drops_spatial_1():
    nodes = [node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y"], spatial=1, epsilon=1e-3)]
    original = model(nodes, {"x": IMAGE}, ["y"], 7, _batch_norm_inputs())
    upgraded, _ = assert_upgrades_exactly(original, 15, {"x": IMAGE})
    assert _attrs(upgraded, "BatchNormalization") == {"epsilon": np.float32(1e-3)}


def test_batch_normalization_spatial_0_is_refused():
    nodes = [node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y"], spatial=0)]
    graph = gs.import_onnx(model(nodes, {"x": IMAGE}, ["y"], 7, _batch_norm_inputs()))
    graph.nodes[0].name = "bn"
    with pytest.raises(OpsetUpgradeError, match=r"BatchNormalization \(bn\): spatial=0"):
        upgrade_default_opset(graph, 15)


@pytest.mark.parametrize("mode", [None, "bilinear", "bicubic", "nearest"])
def test_grid_sample_modes_are_renamed(mode):
    grid = RNG.uniform(-1.1, 1.1, (1, 3, 4, 2)).astype(np.float32)
    attrs = {"mode": mode} if mode else {}
    original = model([node("GridSample", ["x", "grid"], ["y"], **attrs)], {"x": IMAGE, "grid": grid}, ["y"], 16)
    upgraded, _ = assert_upgrades_exactly(original, 20, {"x": IMAGE, "grid": grid})
    assert _attrs(upgraded, "GridSample")["mode"].decode() == {None: "linear", "bilinear": "linear"}.get(
        mode, {"bicubic": "cubic", "nearest": "nearest"}.get(mode)
    )


def test_roi_align_states_its_old_coordinate_mode():
    rois = np.array([[0.5, 0.5, 3.2, 2.7], [0, 0, 4, 3]], np.float32)
    batch = np.zeros(2, np.int64)
    nodes = [node("RoiAlign", ["x", "rois", "batch"], ["y"], output_height=2, output_width=3, sampling_ratio=2)]
    feeds = {"x": IMAGE, "rois": rois, "batch": batch}
    upgraded, _ = assert_upgrades_exactly(model(nodes, feeds, ["y"], 10), 16, feeds)
    assert _attrs(upgraded, "RoiAlign")["coordinate_transformation_mode"] == b"output_half_pixel"


def test_one_hot_negative_indices_still_select_nothing():
    """OneHot-9 gives all off_values for an index outside [0, depth); OneHot-11 reads -1 as depth-1.

    onnxruntime runs OneHot-9 with the OneHot-11 kernel (so it cannot serve as the reference here): the
    expectation is OneHot-9's definition, computed with numpy."""
    indices = np.array([[0, -1, 2], [-3, 5, 1]], np.int64)
    nodes = [node("OneHot", ["indices", "depth", "values"], ["y"], axis=-1)]
    inits = {"depth": np.array([4], np.int64), "values": np.array([0.0, 1.0], np.float32)}
    original = model(nodes, {"indices": indices}, ["y"], 9, inits)
    upgraded, report = upgrade(original, 11)
    onnx.checker.check_model(upgraded, full_check=True)
    assert report.per_op() == {"OneHot": 1} and "Where" in _ops(upgraded)
    expected = (indices[..., None] == np.arange(4)).astype(np.float32)  # negative indices match no position
    np.testing.assert_array_equal(run(upgraded, {"indices": indices})[0], expected)
    non_negative = model(nodes, {"indices": np.abs(indices)}, ["y"], 9, inits)
    assert_upgrades_exactly(non_negative, 11, {"indices": np.abs(indices)})


def test_one_hot_with_runtime_depth_is_refused():
    nodes = [node("OneHot", ["indices", "depth", "values"], ["y"])]
    feeds = {"indices": np.array([0, 1], np.int64), "depth": np.array([3], np.int64)}
    original = model(nodes, feeds, ["y"], 9, {"values": np.array([0.0, 1.0], np.float32)})
    with pytest.raises(OpsetUpgradeError, match="depth is not a constant"):
        upgrade(original, 11)


def test_group_normalization_scale_and_bias_become_per_channel():
    x = RNG.standard_normal((2, 6, 3)).astype(np.float32)
    inits = {"scale": np.array([0.5, 2.0, -1.0], np.float32), "bias": np.array([0.1, 0.2, 0.3], np.float32)}
    nodes = [node("GroupNormalization", ["x", "scale", "bias"], ["y"], num_groups=3)]
    # onnx 1.23's checker rejects GroupNormalization-18 itself (deprecated): the original is not checked.
    original = model(nodes, {"x": x}, [("y", np.float32, [2, 6, 3])], 18, inits, check=False)
    upgraded, _ = upgrade(original, 21)
    onnx.checker.check_model(upgraded, full_check=True)
    scale = next(i for i in upgraded.graph.initializer if i.name.endswith("scale"))
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(scale), np.repeat(inits["scale"], 2))
    # onnxruntime runs GroupNormalization-21; the 18 reference is its definition: per-group stats and affine.
    groups = x.reshape(2, 3, -1)
    normed = ((groups - groups.mean(-1, keepdims=True)) / np.sqrt(groups.var(-1, keepdims=True) + 1e-5)).reshape(x.shape)
    expected = normed * np.repeat(inits["scale"], 2)[:, None] + np.repeat(inits["bias"], 2)[:, None]
    np.testing.assert_allclose(run(upgraded, {"x": x})[0], expected, rtol=1e-5, atol=1e-5)


def test_dft_axis_becomes_an_input():
    x = RNG.standard_normal((2, 8, 1)).astype(np.float32)
    original = model([node("DFT", ["x"], ["y"], onesided=1)], {"x": x}, ["y"], 17)
    upgraded, _ = assert_upgrades_exactly(original, 20, {"x": x})
    assert len(upgraded.graph.node[0].input) == 3


@pytest.mark.parametrize("op, opset, target", [("AveragePool", 10, 11), ("MaxPool", 11, 12), ("LpPool", 10, 11)])
def test_same_padding_is_kept_at_stride_1_and_refused_with_larger_strides(op, opset, target):
    x = RNG.standard_normal((1, 2, 7)).astype(np.float32)
    same = model([node(op, ["x"], ["y"], kernel_shape=[3], auto_pad="SAME_UPPER")], {"x": x}, ["y"], opset)
    upgraded, report = assert_upgrades_exactly(same, target, {"x": x})
    assert report.rewritten == [] and report.kept == 1
    strided = model([node(op, ["x"], ["y"], kernel_shape=[3], strides=[2], auto_pad="SAME_UPPER")], {"x": x}, ["y"], opset)
    with pytest.raises(OpsetUpgradeError, match=f"{op} .*changed meaning in opset {target}"):
        upgrade(strided, target)


def test_conv_transpose_same_padding_is_refused():
    w = RNG.standard_normal((2, 2, 3)).astype(np.float32)
    nodes = [node("ConvTranspose", ["x", "w"], ["y"], auto_pad="SAME_LOWER", strides=[2])]
    original = model(nodes, {"x": RNG.standard_normal((1, 2, 5)).astype(np.float32)}, ["y"], 10, {"w": w})
    with pytest.raises(OpsetUpgradeError, match="other side"):
        upgrade(original, 11)


def test_narrowed_type_lists_refuse_only_nodes_using_a_dropped_type():
    ints = model([node("Erf", ["x"], ["y"])], {"x": np.arange(4, dtype=np.int64)}, ["y"], 11)
    with pytest.raises(OpsetUpgradeError, match=r"Erf .*tensor\(int64\)"):
        upgrade(ints, 13)
    floats = model([node("Erf", ["x"], ["y"])], {"x": X234}, ["y"], 11)
    assert_upgrades_exactly(floats, 13, {"x": X234})


@pytest.mark.parametrize("opset, op", [(10, "Upsample"), (11, "Scatter")])
def test_ops_already_deprecated_at_the_models_opset_are_replaced(opset, op):
    """The checker and onnxruntime refuse these deprecated nodes; the reference is the same node one opset back."""
    if op == "Upsample":
        nodes = [node("Upsample", ["x", "s"], ["y"], mode="nearest")]
        feeds, inits, shape = {"x": IMAGE}, {"s": np.array([1.0, 1.0, 2.0, 2.0], np.float32)}, [1, 2, 8, 10]
    else:
        nodes = [node("Scatter", ["data", "indices", "updates"], ["y"], axis=0)]
        feeds = {"data": np.zeros((3, 2), np.float32), "indices": np.array([[2, 0]], np.int64)}
        feeds["updates"] = np.ones((1, 2), np.float32)
        inits, shape = {}, [3, 2]
    original = model(nodes, feeds, [("y", np.float32, shape)], opset, inits, check=False)
    upgraded, report = upgrade(original, 17)
    onnx.checker.check_model(upgraded, full_check=True)
    assert op not in _ops(upgraded) and len(report.rewritten) == 1
    reference = model(nodes, feeds, [("y", np.float32, shape)], opset - 1, inits)
    for expected, actual in zip(run(reference, feeds), run(upgraded, feeds)):
        np.testing.assert_array_equal(expected, actual)


@pytest.mark.parametrize("to, refused", [(onnx.TensorProto.FLOAT, False), (onnx.TensorProto.INT32, True)])
def test_untyped_tensors_are_typed_from_their_producers(to, refused):
    """Without shape inference an exporter's intermediate tensors have no type: it is read off the producers."""
    nodes = [node("Cast", ["x"], ["c"], to=to), node("Mul", ["c", "c"], ["m"]), node("Erf", ["m"], ["y"])]
    graph = gs.import_onnx(model(nodes, {"x": X234}, ["y"], 11))
    for tensor in graph.tensors().values():
        if tensor.name in ("c", "m"):
            tensor.dtype, tensor.shape = None, None
    plan = plan_default_opset_upgrade(graph, 13)
    assert [r.reason for r in plan.refusals] == (["it no longer accepts tensor(int32) by opset 13"] if refused else [])


@pytest.mark.parametrize("scales", [[1.0, 1.0, 1.7, 2.0], [1.0, 1.0, 0.6, 0.5], [1.0, 1.0, 3.0, 0.75]])
@pytest.mark.parametrize("nearest_mode", ["floor", "round_prefer_floor", None])
def test_resize_tf_half_pixel_for_nn_becomes_half_pixel_with_a_shifted_rounding(nearest_mode, scales):
    x = RNG.standard_normal((1, 2, 7, 9)).astype(np.float32)
    attrs = {"coordinate_transformation_mode": "tf_half_pixel_for_nn", "mode": "nearest"}
    attrs |= {"nearest_mode": nearest_mode} if nearest_mode else {}
    inits = {"roi": np.zeros([0], np.float32), "s": np.array(scales, np.float32)}
    original = model([node("Resize", ["x", "roi", "s"], ["y"], **attrs)], {"x": x}, ["y"], 11, inits)
    upgraded, report = assert_upgrades_exactly(original, 13, {"x": x})
    assert _attrs(upgraded, "Resize")["coordinate_transformation_mode"] == b"half_pixel"


@pytest.mark.parametrize("attrs", [{"nearest_mode": "ceil"}, {"mode": "linear"}])
def test_resize_tf_half_pixel_for_nn_without_an_equivalent_is_refused(attrs):
    x = RNG.standard_normal((1, 2, 7, 9)).astype(np.float32)
    inits = {"roi": np.zeros([0], np.float32), "s": np.array([1.0, 1.0, 2.0, 2.0], np.float32)}
    nodes = [node("Resize", ["x", "roi", "s"], ["y"], coordinate_transformation_mode="tf_half_pixel_for_nn", **attrs)]
    with pytest.raises(OpsetUpgradeError, match="tf_half_pixel_for_nn"):
        upgrade(model(nodes, {"x": x}, ["y"], 11, inits), 13)

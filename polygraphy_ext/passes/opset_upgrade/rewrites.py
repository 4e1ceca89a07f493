"""Exact rewrites of one node whose operator changed form or meaning between the model's opset and the target.

A rewriter looks at the node (and only reads the graph), then returns ``(what it will do, apply)`` or None when
the node needs nothing, or raises ``Refuse`` when the node's old meaning has no exact new form. Nothing is
changed before every node of the graph has been planned: ``apply`` runs later, only if nobody refused.
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from polygraphy_ext.passes.naming import UniqueNames


class Refuse(Exception):
    """The node cannot be upgraded exactly; ``reason`` says why in a few words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def np_dtype(dtype) -> Optional[np.dtype]:
    """gs keeps numpy dtypes where numpy has one and ONNX enums otherwise (bfloat16, float8)."""
    if dtype is None:
        return None
    if isinstance(dtype, int):
        try:
            return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(dtype))
        except Exception:
            return None
    try:
        return np.dtype(dtype)
    except TypeError:
        return None


# Ops whose output has the element type of input 0 (for the first group, of every input): enough to type a
# tensor that shape inference left untyped by walking up to a typed one (an initializer, a graph input, a Cast).
_SAME_TYPE_AS_INPUTS = frozenset(
    "Add Sub Mul Div Max Min Mean Sum MatMul Gemm Concat PRelu Einsum Neg Abs Relu LeakyRelu Sigmoid Tanh Erf Sqrt "
    "Exp Log Reciprocal Softmax LogSoftmax Hardmax Ceil Floor Round Sin Cos Identity Dropout Transpose Reshape "
    "Squeeze Unsqueeze Flatten Slice Gather GatherElements GatherND Expand Tile Pad Clip Pow LayerNormalization "
    "BatchNormalization InstanceNormalization Conv ConvTranspose Resize Upsample Split ReduceMean ReduceSum ReduceMax "
    "ReduceMin ReduceProd ReduceL1 ReduceL2 ReduceSumSquare ReduceLogSum ReduceLogSumExp AveragePool MaxPool "
    "GlobalAveragePool Gelu Elu Selu Softplus HardSigmoid CumSum DepthToSpace SpaceToDepth".split()
)
_FIRST_INPUT_ONLY = frozenset(
    "Dropout Reshape Squeeze Unsqueeze Slice Gather GatherElements GatherND Expand Tile Pad Clip Pow Resize "
    "Upsample Split ReduceMean ReduceSum ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2 ReduceSumSquare ReduceLogSum "
    "ReduceLogSumExp CumSum LayerNormalization BatchNormalization InstanceNormalization".split()
)
_INT64_OUTPUT = frozenset(["Shape", "Size", "NonZero", "ArgMax", "ArgMin"])
_BOOL_OUTPUT = frozenset("Equal Less Greater LessOrEqual GreaterOrEqual Not And Or Xor IsNaN IsInf".split())


def known_dtype(tensor, max_hops: int = 64) -> Optional[np.dtype]:
    """The element type of ``tensor``: its own, or one read off the nodes that produce it (when untyped)."""
    for _ in range(max_hops):
        if tensor is None:
            return None
        dtype = np_dtype(tensor.dtype)
        if dtype is not None or isinstance(tensor, gs.Constant):
            return dtype
        producer = tensor.inputs[0] if len(tensor.inputs) == 1 else None
        if producer is None or (producer.domain or "") not in ("", "ai.onnx"):
            return None
        if producer.op == "Cast" and "to" in producer.attrs:
            return np_dtype(int(producer.attrs["to"]))
        if producer.op in _INT64_OUTPUT:
            return np.dtype(np.int64)
        if producer.op in _BOOL_OUTPUT:
            return np.dtype(np.bool_)
        if producer.op == "Where" and len(producer.inputs) == 3:
            candidates = producer.inputs[1:]
        elif producer.op in _SAME_TYPE_AS_INPUTS:
            candidates = producer.inputs[:1] if producer.op in _FIRST_INPUT_ONLY else producer.inputs
        else:
            return None
        candidates = [t for t in candidates if t.name]
        typed = next((np_dtype(t.dtype) for t in candidates if np_dtype(t.dtype) is not None), None)
        if typed is not None:
            return typed
        tensor = candidates[0] if candidates else None
    return None


@dataclass
class Site:
    """One node to upgrade, where it lives, and how to add what it needs."""

    body: object  # the gs.Graph / subgraph / gs.Function holding the node
    node: gs.Node
    opset: int
    target: int
    names: UniqueNames
    added: List[gs.Node] = field(default_factory=list)

    @property
    def _base(self) -> str:
        # Unnamed nodes are common; their first output's name is unique, so fresh names rarely need a suffix.
        return self.node.name or next((t.name for t in self.node.outputs if t.name), self.node.op)

    def crosses(self, version: int) -> bool:
        """Whether the raise passes the definition of this op that came with ``version``."""
        return self.opset < version <= self.target

    def constant(self, what: str, values) -> gs.Constant:
        return gs.Constant(self.names(f"{self._base}_{what}"), np.asarray(values))

    def variable(self, what: str, dtype=None, shape=None) -> gs.Variable:
        return gs.Variable(self.names(f"{self._base}_{what}"), dtype=dtype, shape=shape)

    def add_node(self, op: str, inputs, outputs, attrs=None) -> gs.Node:
        node = gs.Node(op, self.names(f"{self._base}_{op}"), dict(attrs or {}), inputs, outputs)
        self.added.append(node)
        return node

    def element_type(self, index: int = 0, why: str = "") -> np.dtype:
        dtype = known_dtype(self.node.inputs[index]) if index < len(self.node.inputs) else None
        if dtype is None:
            raise Refuse(f"the element type of input {index} is unknown{why}")
        return dtype


Plan = Optional[Tuple[str, Callable[[], None]]]


def _set_input(node: gs.Node, index: int, tensor) -> None:
    while len(node.inputs) < index:
        node.inputs.append(gs.Variable.empty())
    if len(node.inputs) == index:
        node.inputs.append(tensor)
    else:
        node.inputs[index] = tensor


def _attributes_to_inputs(
    site: Site, moves: Sequence[Tuple[str, int, object]], version: int, values: Optional[Dict[str, object]] = None
) -> Plan:
    """Move attributes to inputs (``(attribute, input index, dtype)``) when the raise crosses ``version``.

    ``values`` overrides what is moved (a missing key drops the attribute: its input keeps the default).
    """
    if not site.crosses(version):
        return None
    node = site.node
    if values is None:
        values = {name: node.attrs[name] for name, _, _ in moves if name in node.attrs}
    present = [(name, index, dtype) for name, index, dtype in moves if name in values]
    dropped = [name for name, _, _ in moves if name in node.attrs]
    if not present and not dropped:
        return None

    def apply():
        for name in dropped:
            del node.attrs[name]
        for name, index, dtype in present:
            _set_input(node, index, site.constant(name, np.array(values[name], dtype=dtype)))

    return f"attribute(s) {'/'.join(dropped)} -> input(s)", apply


def reduce_axes(site: Site) -> Plan:
    return _attributes_to_inputs(site, [("axes", 1, np.int64)], 13 if site.node.op == "ReduceSum" else 18)


def squeeze_axes(site: Site) -> Plan:
    if site.node.op == "Unsqueeze" and site.crosses(13) and "axes" not in site.node.attrs:
        raise Refuse("Unsqueeze without axes is invalid")
    return _attributes_to_inputs(site, [("axes", 1, np.int64)], 13)


def topk_k(site: Site) -> Plan:
    if not site.crosses(10):
        return None
    if "k" not in site.node.attrs:
        raise Refuse("TopK without k is invalid")
    return _attributes_to_inputs(site, [("k", 1, np.int64)], 10, {"k": [site.node.attrs["k"]]})  # K is 1-D


def slice_attributes(site: Site) -> Plan:
    return _attributes_to_inputs(site, [("starts", 1, np.int64), ("ends", 2, np.int64), ("axes", 3, np.int64)], 10)


def dft_axis(site: Site) -> Plan:
    # DFT-17's axis defaults to 1, DFT-20's input to -2: state the old value.
    return _attributes_to_inputs(site, [("axis", 2, np.int64)], 20, {"axis": site.node.attrs.get("axis", 1)})


def clip_bounds(site: Site) -> Plan:
    if not site.crosses(11) or not ({"min", "max"} & set(site.node.attrs)):
        return None
    dtype = site.element_type(0, ", so min/max cannot become typed inputs")
    return _attributes_to_inputs(site, [("min", 1, dtype), ("max", 2, dtype)], 11)


def pad_inputs(site: Site) -> Plan:
    if not site.crosses(11):
        return None
    node = site.node
    if "pads" not in node.attrs:
        raise Refuse("Pad without pads is invalid")
    values = {"pads": node.attrs["pads"]}
    value = float(node.attrs.get("value", 0.0))
    dtype = None
    if node.attrs.get("mode", "constant") == "constant" and value != 0.0:  # 0 is the input's default
        values["value"] = value
        dtype = site.element_type(0, ", so value cannot become a typed input")
    return _attributes_to_inputs(site, [("pads", 1, np.int64), ("value", 2, dtype)], 11, values)


def split_sizes(site: Site) -> Plan:
    node = site.node
    plans = [_attributes_to_inputs(site, [("split", 1, np.int64)], 13)]
    has_sizes = "split" in node.attrs or (len(node.inputs) > 1 and node.inputs[1].name)
    if site.crosses(18) and not has_sizes and "num_outputs" not in node.attrs:
        count = len(node.outputs)
        plans.append((f"num_outputs={count} stated", lambda: node.attrs.__setitem__("num_outputs", count)))
    return _combine(plans)


def _combine(plans: Sequence[Plan]) -> Plan:
    plans = [p for p in plans if p is not None]
    if not plans:
        return None

    def apply():
        for _, step in plans:
            step()

    return "; ".join(what for what, _ in plans), apply


def softmax_axis(site: Site) -> Plan:
    """Below 13, Softmax/LogSoftmax/Hardmax work on the input coerced to 2-D at ``axis`` (default 1)."""
    if not site.crosses(13):
        return None
    node = site.node
    x = node.inputs[0]
    axis = int(node.attrs.get("axis", 1))
    shape = list(x.shape) if x.shape is not None else None
    if shape is not None:
        rank = len(shape)
        positive = axis + rank if axis < 0 else axis
        trailing = shape[positive + 1 :]
        if all(isinstance(d, int) and d == 1 for d in trailing):
            why = "last axis" if not trailing else "trailing dims are 1"
            return f"axis={positive} made explicit ({why})", lambda: node.attrs.__setitem__("axis", positive)
    if site.target < 14 and (shape is None or not all(isinstance(d, int) and d > 0 for d in shape)):
        # Reshape before 14 reads a 0 in the shape as "copy this dim", which breaks empty tensors.
        raise Refuse(f"{node.op} at axis {axis} needs a Flatten/Reshape wrap that is exact only from opset 14")

    def apply():
        y = node.outputs[0]
        flat = site.variable("flat", dtype=x.dtype)
        flat_out = site.variable("2d", dtype=y.dtype)
        shape_of_x = site.variable("shape", dtype=np.int64)
        site.add_node("Flatten", [x], [flat], {"axis": axis})
        site.add_node("Shape", [x], [shape_of_x])
        node.inputs[0] = flat
        node.outputs[0] = flat_out
        node.attrs["axis"] = 1
        site.add_node("Reshape", [flat_out, shape_of_x], [y], {"allowzero": 1} if site.target >= 14 else {})

    return f"Flatten(axis={axis}) -> {node.op}(axis=1) -> Reshape to the input shape", apply


def dropout(site: Site) -> Plan:
    node = site.node
    plans = [_attributes_to_inputs(site, [("ratio", 1, np.float32)], 12)]
    mask = node.outputs[1] if len(node.outputs) > 1 and node.outputs[1].name else None
    if mask is not None and site.crosses(12):
        if mask.outputs or any(t is mask for t in site.body.outputs):
            # Dropout-12 defines the inference mask (all true); before, it was unspecified (onnxruntime: zeros).
            raise Refuse("its mask output is used, and the inference mask was unspecified before opset 12")
        plans.append(("unused mask output dropped", lambda: node.outputs.__delitem__(1)))
    return _combine(plans)


def batch_normalization(site: Site) -> Plan:
    node = site.node
    plans = []
    if site.crosses(9) and "spatial" in node.attrs:
        if int(node.attrs["spatial"]) != 1:
            raise Refuse("spatial=0 (per-activation statistics) has no form after opset 8")
        plans.append(("attribute spatial=1 dropped", lambda: node.attrs.pop("spatial")))
    if site.crosses(14) and len(node.outputs) > 1:
        extra = [t for t in node.outputs[1:] if t.name]
        if any(t.outputs or any(t is o for o in site.body.outputs) for t in extra):
            raise Refuse("its training outputs are used; BatchNormalization-14 has no such outputs in inference")
        plans.append(("unused training outputs dropped", lambda: node.outputs.__delitem__(slice(1, None))))
    return _combine(plans)


def grid_sample_mode(site: Site) -> Plan:
    if not site.crosses(20):
        return None
    node = site.node
    old = node.attrs.get("mode", "bilinear")
    new = {"bilinear": "linear", "bicubic": "cubic"}.get(old, old)
    return f"mode {old} -> {new}", lambda: node.attrs.__setitem__("mode", new)


def roi_align_mode(site: Site) -> Plan:
    node = site.node
    if not site.crosses(16) or "coordinate_transformation_mode" in node.attrs:
        return None
    return "coordinate_transformation_mode=output_half_pixel (the old behaviour) stated", (
        lambda: node.attrs.__setitem__("coordinate_transformation_mode", "output_half_pixel")
    )


def scatter_elements(site: Site) -> Plan:
    if site.target < 11:  # from 11 on Scatter is deprecated, also in a model already at 11+
        return None
    return "Scatter -> ScatterElements", lambda: setattr(site.node, "op", "ScatterElements")


def _constant_values(tensor) -> Optional[np.ndarray]:
    return np.asarray(tensor.values) if isinstance(tensor, gs.Constant) else None


def one_hot_indices(site: Site) -> Plan:
    """OneHot-11 reads index -1 as depth-1; OneHot-9 gave all off_values: map negatives out of range instead."""
    if not site.crosses(11):
        return None
    node = site.node
    indices, depth = node.inputs[0], node.inputs[1]
    known = _constant_values(indices)
    if known is not None and (known >= 0).all():
        return None
    depth_value = _constant_values(depth)
    if depth_value is None:
        raise Refuse("its indices may be negative and its depth is not a constant")
    dtype = site.element_type(0, ", so negative indices cannot be remapped")

    def apply():
        negative = site.variable("negative", dtype=np.bool_)
        remapped = site.variable("indices", dtype=indices.dtype, shape=indices.shape)
        site.add_node("Less", [indices, site.constant("zero", np.array(0, dtype=dtype))], [negative])
        out_of_range = site.constant("out_of_range", np.array(depth_value.reshape(-1)[0], dtype=dtype))
        site.add_node("Where", [negative, out_of_range, indices], [remapped])
        node.inputs[0] = remapped

    return "negative indices mapped past depth (selecting nothing, as before)", apply


def group_norm_scale(site: Site) -> Plan:
    if not site.crosses(21):
        return None
    node = site.node
    x, scale, bias = node.inputs[0], node.inputs[1], node.inputs[2]
    groups = int(node.attrs["num_groups"])
    channels = x.shape[1] if x.shape is not None and len(x.shape) > 1 else None
    values = [_constant_values(scale), _constant_values(bias)]
    if not isinstance(channels, int) or any(v is None for v in values) or channels % groups:
        raise Refuse("its per-group scale/bias become per-channel only for constant scale/bias and a known channel count")

    def apply():
        for index, what, value in ((1, "scale", values[0]), (2, "bias", values[1])):
            node.inputs[index] = site.constant(what, np.repeat(value.reshape(-1), channels // groups))

    return f"scale/bias repeated from {groups} groups to {channels} channels", apply


def _strides_are_one(node: gs.Node) -> bool:
    return all(int(s) == 1 for s in node.attrs.get("strides", []))


def pool_same_padding(site: Site) -> Plan:
    """Before these versions, auto_pad SAME_* meant "output as large as the input": the same only at stride 1."""
    node = site.node
    version = 12 if node.op == "MaxPool" else 11
    if not site.crosses(version):
        return None
    if node.attrs.get("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER") and not _strides_are_one(node):
        strides = list(node.attrs["strides"])
        raise Refuse(f"auto_pad={node.attrs['auto_pad']} with strides {strides} changed meaning in opset {version}")
    return None


def conv_transpose_same_padding(site: Site) -> Plan:
    node = site.node
    if site.crosses(11) and node.attrs.get("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER"):
        raise Refuse(f"auto_pad={node.attrs['auto_pad']} puts the odd padding on the other side since opset 11")
    return None


def _nearest_mode(scales: Optional[np.ndarray]) -> str:
    """onnxruntime's pre-11 nearest rounding: floor when upsampling an axis, ceil when downsampling it."""
    if scales is None:
        raise Refuse("nearest resizing with non-constant scales: the old rounding depends on their values")
    if (scales >= 1).all():
        return "floor"
    if (scales <= 1).all():
        return "ceil"
    raise Refuse("nearest resizing that upsamples some axes and downsamples others has no single new rounding")


def _resize_from_10(scales: Optional[np.ndarray], mode: str) -> Dict[str, str]:
    """Attributes of a Resize (opset >= 11) equal to a Resize-10 / Upsample with these scales."""
    attrs = {"mode": mode, "coordinate_transformation_mode": "asymmetric"}
    if mode == "nearest":
        attrs["nearest_mode"] = _nearest_mode(scales)
    return attrs


def resize_10(site: Site) -> Plan:
    if not site.crosses(11):
        return None
    node = site.node
    mode = node.attrs.get("mode", "nearest")
    attrs = _resize_from_10(_constant_values(node.inputs[1]), mode)

    def apply():
        scales = node.inputs[1]
        roi = gs.Variable.empty() if site.target >= 13 else site.constant("roi", np.zeros([0], np.float32))
        node.inputs[1] = roi
        node.inputs.append(scales)
        node.attrs.update(attrs)

    return "roi inserted; asymmetric coordinates and the old nearest rounding stated", apply


# tf_half_pixel_for_nn (gone in 13) maps x to v = (x + 0.5) / scale; half_pixel maps it to v - 0.5. A new
# rounding r' with r'(v - 0.5) == r(v) exists for two old ones: floor(v) == round_prefer_ceil(v - 0.5) and
# round_prefer_floor(v) == ceil(v - 0.5).
_TF_HALF_PIXEL_ROUNDING = {"floor": "round_prefer_ceil", "round_prefer_floor": "ceil"}


def resize_tf_half_pixel(site: Site) -> Plan:
    node = site.node
    if not site.crosses(13) or node.attrs.get("coordinate_transformation_mode") != "tf_half_pixel_for_nn":
        return None
    old = node.attrs.get("nearest_mode", "round_prefer_floor")
    new = _TF_HALF_PIXEL_ROUNDING.get(old)
    if node.attrs.get("mode", "nearest") != "nearest" or new is None:
        raise Refuse(
            f"coordinate_transformation_mode tf_half_pixel_for_nn (removed in 13) with mode "
            f"{node.attrs.get('mode', 'nearest')} / nearest_mode {old} has no half_pixel equivalent"
        )

    def apply():
        node.attrs.update(coordinate_transformation_mode="half_pixel", nearest_mode=new)

    return f"tf_half_pixel_for_nn + {old} -> half_pixel + {new}", apply


def resize(site: Site) -> Plan:
    return _combine([resize_10(site), resize_tf_half_pixel(site)])


def upsample(site: Site) -> Plan:
    node = site.node
    from_attribute = "scales" in node.attrs
    if site.target < 10:
        return _attributes_to_inputs(site, [("scales", 1, np.float32)], 9)
    mode = node.attrs.get("mode", "nearest")
    if from_attribute:
        scales_value = np.asarray(node.attrs["scales"], dtype=np.float32)
    else:
        scales_value = _constant_values(node.inputs[1])
    attrs = _resize_from_10(scales_value, mode) if site.target >= 11 else {"mode": mode}

    def apply():
        scales = site.constant("scales", scales_value) if from_attribute else node.inputs[1]
        node.op = "Resize"
        node.attrs.clear()
        node.attrs.update(attrs)
        x = node.inputs[0]
        node.inputs.clear()
        if site.target >= 11:
            roi = gs.Variable.empty() if site.target >= 13 else site.constant("roi", np.zeros([0], np.float32))
            node.inputs.extend([x, roi, scales])
        else:
            node.inputs.extend([x, scales])

    return f"Upsample -> Resize ({', '.join(f'{k}={v}' for k, v in attrs.items())})", apply


REWRITERS: Dict[str, Callable[[Site], Plan]] = {
    **{op: reduce_axes for op in (
        "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin",
        "ReduceProd", "ReduceSum", "ReduceSumSquare",
    )},
    "Squeeze": squeeze_axes,
    "Unsqueeze": squeeze_axes,
    "Split": split_sizes,
    "TopK": topk_k,
    "Slice": slice_attributes,
    "Pad": pad_inputs,
    "Clip": clip_bounds,
    "DFT": dft_axis,
    "Dropout": dropout,
    "Softmax": softmax_axis,
    "LogSoftmax": softmax_axis,
    "Hardmax": softmax_axis,
    "BatchNormalization": batch_normalization,
    "GridSample": grid_sample_mode,
    "RoiAlign": roi_align_mode,
    "Scatter": scatter_elements,
    "OneHot": one_hot_indices,
    "GroupNormalization": group_norm_scale,
    "AveragePool": pool_same_padding,
    "Conv": pool_same_padding,
    "LpPool": pool_same_padding,
    "MaxPool": pool_same_padding,
    "ConvTranspose": conv_transpose_same_padding,
    "Resize": resize,
    "Upsample": upsample,
}

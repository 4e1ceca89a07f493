"""What every default-domain operator change from opset 8 to 23 means for a node written before it.

Each ``(op, since_version)`` at which an existing operator got a new definition is classified once, by reading
the two definitions (``onnx.defs`` docs and schemas) side by side:

- ``Kept``: a node valid before the change computes the same thing after it (more allowed types, a negative
  axis now accepted, a new attribute or trailing optional input whose default is the old behaviour, a
  clarified text). Nothing to do, apart from the narrowed type lists that ``upgrade`` checks per node.
- ``Rewritten``: the node must be rewritten to keep its meaning; ``rewrites.REWRITERS[op]`` does it for every
  such step of that op at once (and may refuse a node whose old meaning has no equivalent).
- ``Refused``: no exact rewrite exists; the step is named in the refusal.

A step missing from this table is refused as "not covered" (so a newer ONNX never passes unreviewed steps).
"""

from dataclasses import dataclass
from typing import Dict, Tuple

FIRST_COVERED = 7  # a model below this opset is refused as a whole: the table starts at opset 8
LAST_COVERED = 23


@dataclass(frozen=True)
class Kept:
    why: str


@dataclass(frozen=True)
class Rewritten:
    what: str


@dataclass(frozen=True)
class Refused:
    why: str


Step = Tuple[str, int]

TYPES = "allowed types were added"

# Steps that only widened (or, checked per node, narrowed) the allowed element types: a test verifies that the
# schemas of each differ in nothing else.
_TYPES_ONLY: Dict[int, str] = {
    9: "Cast Constant Flatten Gemm Greater Less MatMul PRelu",
    11: "Equal",
    12: "Clip Max Min Pow ReduceMax ReduceMin",
    13: (
        "Abs Add ArgMax ArgMin Cast Ceil Clip Concat Constant DepthToSpace Div Dropout Equal Erf "
        "Exp Expand Flatten Floor Gather GatherElements GatherND Gemm Greater Identity If IsNaN LRN Less Log Loop "
        "MatMul Max Mean MeanVarianceNormalization Min Mod Mul Neg NegativeLogLikelihoodLoss NonZero Pad Pow "
        "Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd "
        "ReduceSumSquare Relu Reshape ScatterElements ScatterND Shape Sigmoid Sign Size Slice "
        "SoftmaxCrossEntropyLoss SpaceToDepth Sqrt Sub Sum Tanh Tile Transpose"
    ),
    14: "Add CumSum Div Identity Mul Relu Sub",
    15: "BatchNormalization Pow",
    16: "GreaterOrEqual Identity If LeakyRelu LessOrEqual Loop PRelu Scan Where",
    19: "Constant DequantizeLinear Equal Identity If Loop Reshape Scan Shape Size",
    20: "ConstantOfShape IsInf IsNaN ReduceMax ReduceMin",
    21: (
        "Cast CastLike Constant ConstantOfShape Flatten Identity If Loop Pad QLinearMatMul Reshape Scan Shape Size "
        "Squeeze Transpose Unsqueeze"
    ),
    22: (
        "Acos Acosh Asin Asinh Atan Atanh AveragePool Bernoulli Conv ConvTranspose Cos Cosh DeformConv Det Dropout "
        "Elu EyeLike GRU GlobalAveragePool GlobalLpPool GlobalMaxPool GridSample HardSigmoid HardSwish "
        "InstanceNormalization LSTM LpNormalization LpPool MaxPool MaxRoiPool MaxUnpool Mish Multinomial "
        "NegativeLogLikelihoodLoss RNN RandomNormal RandomNormalLike RandomUniform RandomUniformLike RoiAlign Round "
        "Selu Sin Sinh Softplus Softsign Tan ThresholdedRelu"
    ),
    23: (
        "Cast CastLike Constant ConstantOfShape Flatten Identity If Loop Pad Reshape Scan Shape Size Squeeze Transpose "
        "Unsqueeze"
    ),
}

_NEGATIVE_AXIS = Kept("negative axes became allowed (a valid old node has none)")
_SPEC_TEXT = Kept("only the description was clarified")
_LAYOUT = Kept("attribute layout was added; its default 0 is the old layout")
_BROADCAST = Kept("multidirectional broadcasting was allowed (old nodes had equal shapes)")
_AXES_TO_INPUT = Rewritten("attribute axes became an input")
_SOFTMAX_LIKE = Rewritten("computes along one axis instead of on the 2-D coercion at axis (default axis 1 -> -1)")
_POOL_SAME = Rewritten("auto_pad SAME_* now means ceil(input / stride); refused when a stride is not 1")

_CLASSIFIED: Dict[Step, object] = {
    ("ArgMax", 11): _NEGATIVE_AXIS,
    ("ArgMin", 11): _NEGATIVE_AXIS,
    ("ArgMax", 12): Kept("attribute select_last_index was added; its default 0 is the old behaviour"),
    ("ArgMin", 12): Kept("attribute select_last_index was added; its default 0 is the old behaviour"),
    ("AveragePool", 10): Kept("attribute ceil_mode was added; its default 0 is the old behaviour"),
    ("AveragePool", 11): _POOL_SAME,
    ("AveragePool", 19): Kept("attribute dilations was added; its default 1 is the old behaviour"),
    ("BatchNormalization", 9): Rewritten("attribute spatial was removed (spatial=1 is the only behaviour left)"),
    ("BatchNormalization", 14): Rewritten("the training-only outputs saved_mean/saved_var were removed"),
    ("Cast", 19): Kept("attribute saturate was added; it only affects float8 targets, which opset 18 lacks"),
    ("CastLike", 19): Kept("attribute saturate was added; it only affects float8 targets"),
    ("Clip", 11): Rewritten("attributes min/max became inputs"),
    ("Compress", 11): _NEGATIVE_AXIS,
    ("Concat", 11): _NEGATIVE_AXIS,
    ("Constant", 11): Kept("attribute sparse_value was added as an alternative to value"),
    ("Constant", 12): Kept("attributes value_float(s)/value_int(s)/value_string(s) were added as alternatives"),
    ("Conv", 11): _POOL_SAME,
    ("ConvTranspose", 11): Rewritten("auto_pad SAME_UPPER/SAME_LOWER swapped their padding sides; refused for them"),
    ("DFT", 20): Rewritten("attribute axis became an input"),
    ("DepthToSpace", 11): Kept("attribute mode was added; its default DCR is the old behaviour"),
    ("DequantizeLinear", 13): Kept("attribute axis was added; it only applies to 1-D scales, which opset 10 lacks"),
    ("DequantizeLinear", 21): Kept("attribute block_size was added; its default 0 is the old behaviour"),
    ("DequantizeLinear", 23): Kept("attribute output_dtype was added; its default 0 is the old behaviour"),
    ("Dropout", 10): Rewritten("output mask became bool (a used mask is refused: its inference value was unspecified)"),
    ("Dropout", 12): Rewritten("attribute ratio became an input"),
    ("Flatten", 11): _NEGATIVE_AXIS,
    ("GRU", 14): _LAYOUT,
    ("Gather", 11): Kept("negative indices became allowed (they were out of range before)"),
    ("GatherND", 12): Kept("attribute batch_dims was added; its default 0 is the old behaviour"),
    ("Gemm", 11): Kept("input C became optional"),
    ("GridSample", 20): Rewritten("modes bilinear/bicubic were renamed linear/cubic (default bilinear -> linear)"),
    ("GroupNormalization", 21): Rewritten("scale and bias became per channel instead of per group"),
    ("Hardmax", 11): _NEGATIVE_AXIS,
    ("Hardmax", 13): _SOFTMAX_LIKE,
    ("If", 11): Kept("the branches may now produce different shapes"),
    ("LSTM", 14): _LAYOUT,
    ("LogSoftmax", 11): _NEGATIVE_AXIS,
    ("LogSoftmax", 13): _SOFTMAX_LIKE,
    ("Loop", 11): _SPEC_TEXT,
    ("LpPool", 11): _POOL_SAME,
    ("LpPool", 18): Kept("attribute ceil_mode was added; its default 0 is the old behaviour"),
    ("Max", 8): _BROADCAST,
    ("MaxPool", 8): Kept("optional output Indices and attribute storage_order (default 0) were added"),
    ("MaxPool", 10): Kept("attributes dilations (default 1) and ceil_mode (default 0) were added"),
    ("MaxPool", 11): Kept("only the defaults of strides/dilations were spelled out (1)"),
    ("MaxPool", 12): _POOL_SAME,
    ("MaxUnpool", 11): Kept("only the default of strides was spelled out (1)"),
    ("Mean", 8): _BROADCAST,
    ("Min", 8): _BROADCAST,
    ("NonMaxSuppression", 11): Kept("only the IoU comparison was clarified (strictly greater)"),
    ("OneHot", 11): Rewritten("negative indices now count from the back instead of selecting nothing"),
    ("OptionalGetElement", 18): Kept("a plain tensor or sequence input became allowed"),
    ("OptionalHasElement", 18): Kept("the input became optional"),
    ("Pad", 11): Rewritten("attributes pads/value became inputs"),
    ("Pad", 18): Kept("optional input axes was added; absent means all axes"),
    ("Pad", 19): Kept("mode wrap was added"),
    ("QuantizeLinear", 13): Kept("attribute axis was added; it only applies to 1-D scales, which opset 10 lacks"),
    ("QuantizeLinear", 19): Kept("attribute saturate was added; it only affects float8 outputs"),
    ("QuantizeLinear", 21): Kept("attribute output_dtype was added; its default 0 is the old behaviour"),
    ("QuantizeLinear", 23): Kept("attribute precision was added; its default 0 is the old behaviour"),
    ("RNN", 14): _LAYOUT,
    ("Reshape", 14): Kept("attribute allowzero was added; its default 0 is the old behaviour"),
    ("Resize", 11): Rewritten("input roi was inserted and the coordinate/nearest modes gained defaults"),
    ("Resize", 13): Rewritten("coordinate_transformation_mode tf_half_pixel_for_nn was removed; roi/scales became optional"),
    ("Resize", 18): Kept("attributes antialias, axes, keep_aspect_ratio_policy were added; defaults are the old behaviour"),
    ("Resize", 19): Kept("coordinate_transformation_mode half_pixel_symmetric was added"),
    ("RoiAlign", 16): Rewritten("attribute coordinate_transformation_mode was added with a default unlike the old one"),
    ("Scan", 9): Refused("Scan-8's batch axis and sequence_lens input have no exact Scan-9 form here"),
    ("Scan", 11): _NEGATIVE_AXIS,
    ("Scatter", 11): Rewritten("Scatter was deprecated for ScatterElements (same semantics)"),
    ("ScatterElements", 16): Kept("attribute reduction was added; its default none is the old behaviour"),
    ("ScatterElements", 18): Kept("reductions max/min were added"),
    ("ScatterND", 16): Kept("attribute reduction was added; its default none is the old behaviour"),
    ("ScatterND", 18): Kept("reductions max/min were added"),
    ("Shape", 15): Kept("attributes start/end were added; the defaults take the whole shape"),
    ("Slice", 10): Rewritten("attributes starts/ends/axes became inputs"),
    ("Slice", 11): _NEGATIVE_AXIS,
    ("Softmax", 11): _NEGATIVE_AXIS,
    ("Softmax", 13): _SOFTMAX_LIKE,
    ("Split", 11): _NEGATIVE_AXIS,
    ("Split", 13): Rewritten("attribute split became an input"),
    ("Split", 18): Rewritten("an equal split must now state num_outputs"),
    ("Squeeze", 11): _NEGATIVE_AXIS,
    ("Squeeze", 13): _AXES_TO_INPUT,
    ("Sum", 8): _BROADCAST,
    ("TopK", 10): Rewritten("attribute k became an input"),
    ("TopK", 11): Kept("attributes largest/sorted were added (defaults 1 = old behaviour); negative axes allowed"),
    ("Unsqueeze", 11): _NEGATIVE_AXIS,
    ("Unsqueeze", 13): _AXES_TO_INPUT,
    ("Upsample", 10): Rewritten("Upsample was deprecated for Resize"),
    ("Upsample", 9): Rewritten("attribute scales became an input"),
}

for _op in ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin",
            "ReduceProd", "ReduceSum", "ReduceSumSquare"):
    _CLASSIFIED[(_op, 11)] = _NEGATIVE_AXIS
    _CLASSIFIED[(_op, 18)] = _AXES_TO_INPUT
_CLASSIFIED[("ReduceSum", 13)] = _AXES_TO_INPUT
del _CLASSIFIED[("ReduceSum", 18)]  # ReduceSum moved its axes at 13 and has no 18


def _build() -> Dict[Step, object]:
    table = dict(_CLASSIFIED)
    for version, ops in _TYPES_ONLY.items():
        for op in ops.split():
            assert (op, version) not in table, (op, version)
            table[(op, version)] = Kept(TYPES)
    return table


STEPS: Dict[Step, object] = _build()

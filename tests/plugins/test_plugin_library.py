"""The plugin library on CPU, through TensorRT-RTX: registration, ONNX parse + SM89 engine builds, the build-time
plugin methods, field serialization, and clean rejection of bad fields. No GPU needed (CI)."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from polygraphy_ext.plugins.specs import library_spec, plugin_spec

ONNX_TYPES = {"fp32": TensorProto.FLOAT, "fp16": TensorProto.FLOAT16}
NP_TYPES = {"fp32": np.float32, "fp16": np.float16}
HIDDEN = 64


def plugin_model(name, dtype="fp32", dynamic=False, param_dtype=None, **fields) -> bytes:
    """One plugin node with all its optional inputs, parameters as initializers, shape [B, 8, HIDDEN]."""
    spec = plugin_spec(name)
    attrs = spec.onnx_attrs(**fields)
    batch = "B" if dynamic else 2
    act = helper.make_tensor_value_info
    graph_inputs, initializers, node_inputs = [], [], []
    param_np = NP_TYPES[param_dtype or dtype]
    rng = np.random.default_rng(0)
    names = [n.rstrip("?") for n in spec.inputs]
    if name == "SkipLayerNorm":
        names = ["input", "skip", "gamma"] + (["beta"] if attrs["has_beta"] else []) + (["bias"] if attrs["has_bias"] else [])
    for input_name in names:
        if input_name in ("input", "skip"):
            graph_inputs.append(act(input_name, ONNX_TYPES[dtype], [batch, 8, HIDDEN]))
        else:
            initializers.append(onnx.numpy_helper.from_array(rng.standard_normal(HIDDEN).astype(param_np), input_name))
        node_inputs.append(input_name)
    outputs = ["output"] + (["sum"] if name == "SkipLayerNorm" and attrs["output_sum"] else [])
    node = helper.make_node(name, node_inputs, outputs, domain=spec.onnx_domain, **attrs)
    graph = helper.make_graph(
        [node], "plugin", graph_inputs, [act(o, ONNX_TYPES[dtype], [batch, 8, HIDDEN]) for o in outputs], initializers
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(spec.onnx_domain, 1)]
    )
    return model.SerializeToString()


@pytest.fixture(scope="module")
def registry(trt, plugin_library):
    logger = RecordingLogger(trt)
    builder = trt.Builder(logger)
    registry = builder.get_plugin_registry()
    assert registry.load_library(str(plugin_library)) is not None
    return registry, logger, builder


class RecordingLogger:
    """A trt.ILogger that keeps messages, so tests can see what the library logged."""

    def __new__(cls, trt):
        class _Logger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.messages = []

            def log(self, severity, msg):
                self.messages.append((severity, msg))

        return _Logger()


def field_collection(trt, **values):
    fields = []
    for name, value in values.items():
        if isinstance(value, tuple):  # (numpy array, PluginFieldType): explicit, possibly malformed
            array, kind = value
        elif isinstance(value, float):
            array, kind = np.array([value], np.float32), trt.PluginFieldType.FLOAT32
        elif isinstance(value, int):
            array, kind = np.array([value], np.int32), trt.PluginFieldType.INT32
        else:
            array, kind = np.frombuffer(value.encode(), np.int8), trt.PluginFieldType.CHAR
        fields.append(trt.PluginField(name, array, kind))
    return trt.PluginFieldCollection(fields)


def test_library_registers_every_spec_with_its_fields(trt, registry):
    reg, _, _ = registry
    lib = library_spec()
    for name, spec in lib.plugins.items():
        creator = reg.get_creator(name, spec.version, lib.namespace)
        assert creator is not None, name
        assert creator.name == name and creator.plugin_version == spec.version
        assert creator.plugin_namespace == lib.namespace
        kinds = {"float32": trt.PluginFieldType.FLOAT32, "int32": trt.PluginFieldType.INT32, "char": trt.PluginFieldType.CHAR}
        assert {f.name: f.type for f in creator.field_names} == {f: kinds[s.type] for f, s in spec.fields.items()}


@pytest.mark.parametrize("name", sorted(library_spec().plugins))
@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_onnx_plugin_node_parses_and_builds_for_sm89(build_engine, plugin_library, name, dtype, dynamic):
    extra = {"has_bias": 1, "output_sum": 1} if name == "SkipLayerNorm" else {}
    engine = build_engine(plugin_model(name, dtype, dynamic, **extra), plugin_libraries=[plugin_library])
    assert len(engine) > 0


def test_fp32_parameters_with_fp16_activations_build(build_engine, plugin_library):
    model = plugin_model("LayerNorm", "fp16", param_dtype="fp32")
    assert len(build_engine(model, plugin_libraries=[plugin_library])) > 0


def test_fp16_parameters_with_fp32_activations_are_refused(build_engine, plugin_library):
    with pytest.raises(Exception):
        build_engine(plugin_model("RMSNorm", "fp32", param_dtype="fp16"), plugin_libraries=[plugin_library])


def test_output_shapes_and_types_follow_input(trt, registry):
    reg, _, builder = registry
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, RecordingLogger(trt))
    model = plugin_model("SkipLayerNorm", "fp16", dynamic=True, param_dtype="fp32", has_bias=1, output_sum=1)
    assert parser.parse(model), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    layer = network.get_layer(network.num_layers - 1)
    assert layer.num_outputs == 2  # output_sum=1 adds the residual stream
    for i in range(2):
        assert tuple(layer.get_output(i).shape) == (-1, 8, HIDDEN)
        assert layer.get_output(i).dtype == trt.DataType.HALF


@pytest.fixture(scope="module")
def harness(plugin_library, tmp_path_factory):
    """tools/harness.cpp: drives the C++ plugin interfaces directly (TensorRT-RTX's Python API cannot return a
    C++ plugin's serialized fields). Needs a C++ compiler and the CUDA headers, as building the library does."""
    import shutil
    import sys
    from pathlib import Path

    if shutil.which("g++") is None:
        pytest.skip("no g++ to build the harness shim")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "trt_plugins" / "tools"))
    from plugin_harness import PluginHarness

    try:
        return PluginHarness(plugin_library, build_dir=tmp_path_factory.mktemp("harness"))
    except Exception as err:  # pragma: no cover - depends on the machine
        pytest.skip(f"cannot build the harness shim: {err}")


FLOAT, HALF = 0, 1  # nvinfer1::DataType values


@pytest.mark.parametrize(
    "name, fields, inputs, outputs",
    [
        ("LayerNorm", {"epsilon": 1e-3, "axis": -2}, [(HALF, (4, 8, 64)), (FLOAT, (512,)), (FLOAT, (512,))], 1),
        (
            "SkipLayerNorm",
            {"epsilon": 2e-6, "axis": -1, "has_beta": 0, "has_bias": 1, "output_sum": 1},
            [(HALF, (4, 64)), (HALF, (4, 64)), (HALF, (64,)), (HALF, (64,))],
            2,
        ),
        ("RMSNorm", {"epsilon": 1e-8, "axis": 1}, [(FLOAT, (4, 64)), (FLOAT, (64,))], 1),
        ("BiasGelu", {"approximate": "tanh"}, [(HALF, (4, 3, 64)), (FLOAT, (3, 64))], 1),
    ],
)
def test_build_methods_and_serialized_fields_round_trip(harness, name, fields, inputs, outputs):
    # supportsFormatCombination, getOutputDataTypes, configurePlugin, getWorkspaceSize, getFieldsToSerialize,
    # createPlugin(kRUNTIME) from those fields, onShapeChange: prepare_descs raises naming the step that failed.
    session = harness.prepare_descs(name, fields, inputs, [(inputs[0][0], inputs[0][1])] * outputs)
    serialized = harness.serialized_fields(session.plugin)
    assert set(serialized) == set(plugin_spec(name).fields)
    for key, value in fields.items():
        if isinstance(value, float):
            assert float(serialized[key]) == pytest.approx(value, rel=1e-6, abs=1e-9)
        else:
            assert serialized[key] == str(value)


@pytest.mark.parametrize(
    "name, fields, inputs, outputs, step",
    [
        # fp16 parameters with fp32 activations: not a supported format combination
        ("RMSNorm", {}, [(FLOAT, (4, 64)), (HALF, (64,))], [(FLOAT, (4, 64))], "supportsFormatCombination"),
        # output type differs from the input type
        ("LayerNorm", {}, [(HALF, (4, 64)), (HALF, (64,))], [(FLOAT, (4, 64))], "supportsFormatCombination"),
        # gamma does not span the normalized dims
        ("LayerNorm", {"axis": -2}, [(FLOAT, (4, 8, 64)), (FLOAT, (64,))], [(FLOAT, (4, 8, 64))], "configurePlugin"),
        # one output too many for output_sum=0
        ("SkipLayerNorm", {"has_beta": 0}, [(FLOAT, (4, 64))] * 3, [(FLOAT, (4, 64))] * 2, "supportsFormatCombination"),
        # bias matches no trailing dims of the input
        ("BiasGelu", {}, [(FLOAT, (4, 64)), (FLOAT, (32,))], [(FLOAT, (4, 64))], "configurePlugin"),
    ],
)
def test_inconsistent_tensors_are_refused_at_build_time(harness, name, fields, inputs, outputs, step):
    with pytest.raises(Exception, match=step):
        harness.prepare_descs(name, fields, inputs, outputs)


def test_integer_fields_accept_int64_and_float_fields_float64(trt, registry):
    reg, _, _ = registry
    creator = reg.get_creator("LayerNorm", "1", "polygraphy_ext")
    fields = field_collection(
        trt,
        epsilon=(np.array([1e-3], np.float64), trt.PluginFieldType.FLOAT64),
        axis=(np.array([-1], np.int64), trt.PluginFieldType.INT64),
    )
    assert creator.create_plugin("p", fields, trt.TensorRTPhase.BUILD) is not None


BAD_FIELDS = [
    ("LayerNorm", {"epsilon": -1.0}, "'epsilon' must be finite and >= 0"),
    ("LayerNorm", {"epsilom": 1e-5}, "unknown field 'epsilom'"),
    ("RMSNorm", {"epsilon": "small"}, "'epsilon' must be float32 or float64, got char"),
    ("RMSNorm", {"axis": 1.5}, "'axis' must be an integer"),
    ("SkipLayerNorm", {"output_sum": 2}, "'output_sum' must be 0 or 1"),
    ("BiasGelu", {"approximate": "fast"}, "'approximate' must be \"none\" or \"tanh\""),
    ("BiasGelu", {"approximate": 1}, "'approximate' must be a string"),
]


@pytest.mark.parametrize("name, fields, message", BAD_FIELDS, ids=[f"{n}-{m[:20]}" for n, _, m in BAD_FIELDS])
def test_bad_fields_give_null_plugin_and_logged_error(trt, registry, name, fields, message):
    reg, logger, _ = registry
    creator = reg.get_creator(name, "1", "polygraphy_ext")
    logger.messages.clear()
    assert creator.create_plugin("p", field_collection(trt, **fields), trt.TensorRTPhase.BUILD) is None
    errors = [m for s, m in logger.messages if s == trt.ILogger.ERROR]
    assert any(message in m for m in errors), logger.messages


def test_field_with_two_values_is_rejected(trt, registry):
    reg, logger, _ = registry
    creator = reg.get_creator("LayerNorm", "1", "polygraphy_ext")
    logger.messages.clear()
    fields = field_collection(trt, axis=(np.array([1, 2], np.int32), trt.PluginFieldType.INT32))
    assert creator.create_plugin("p", fields, trt.TensorRTPhase.BUILD) is None
    assert any("must hold one value" in m for _, m in logger.messages)


def test_missing_field_at_deserialization_is_rejected(trt, registry):
    reg, logger, _ = registry
    creator = reg.get_creator("SkipLayerNorm", "1", "polygraphy_ext")
    logger.messages.clear()
    partial = field_collection(trt, epsilon=1e-5, axis=-1)
    assert creator.create_plugin("p", partial, trt.TensorRTPhase.RUNTIME) is None
    assert any("serialized field 'has_beta' is missing" in m for _, m in logger.messages)
    # At build time the same fields are fine: the rest take the defaults from specs.json.
    assert creator.create_plugin("p", partial, trt.TensorRTPhase.BUILD) is not None


def test_gamma_of_the_wrong_size_fails_the_build_with_a_message(trt, build_engine, plugin_library):
    model = onnx.load_from_string(plugin_model("LayerNorm"))
    gamma = model.graph.initializer[0]
    gamma.CopyFrom(onnx.numpy_helper.from_array(np.ones(HIDDEN - 1, np.float32), gamma.name))
    with pytest.raises(Exception):
        build_engine(model.SerializeToString(), plugin_libraries=[plugin_library])


def test_axis_out_of_range_fails_the_build(build_engine, plugin_library):
    with pytest.raises(Exception):
        build_engine(plugin_model("RMSNorm", axis=3), plugin_libraries=[plugin_library])


def test_the_shipped_library_exports_no_tuning_hook(harness):
    # Forcing kernel variants (bench/plugins.py --variants) needs a -DPOLYGRAPHY_EXT_TUNING=ON build; a release build
    # exports getCreators and setLoggerFinder alone, and the harness says so in one line.
    from plugin_harness import PluginError

    with pytest.raises(PluginError, match="not a tuning build"):
        harness.tune_row_norm_variant("light-2")

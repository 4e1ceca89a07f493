"""TensorRT in tests: a real TensorRT-RTX builder parses ONNX and builds engines for SM89 on a CPU-only machine."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _matmul_relu_model(batch="N"):
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "matmul_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 8])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_parses_and_builds_static_engine_for_sm89(trt, build_engine):
    engine = build_engine(_matmul_relu_model(batch=4).SerializeToString())
    assert len(engine) > 1000


def test_parses_and_builds_dynamic_engine_for_sm89(trt, build_engine):
    # Dynamic batch: the fixture adds an optimization profile 1..8.
    engine = build_engine(_matmul_relu_model().SerializeToString())
    assert len(engine) > 1000


def test_parse_failure_is_reported(trt, build_engine):
    import pytest

    with pytest.raises(AssertionError, match="ONNX parse failed"):
        build_engine(b"this is not an onnx model")


def test_polygraphy_convert_builds_for_sm89(tmp_path, run_polygraphy):
    model_path = tmp_path / "m.onnx"
    onnx.save(_matmul_relu_model(batch=2), model_path)
    engine_path = tmp_path / "m.engine"
    proc = run_polygraphy(
        "convert", model_path, "-o", engine_path, "--compute-capabilities", "8.9",
        env={"POLYGRAPHY_USE_TENSORRT_RTX": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert engine_path.stat().st_size > 1000

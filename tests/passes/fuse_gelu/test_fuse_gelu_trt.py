"""TensorRT-RTX (SM89, on CPU) parses and builds what fuse-gelu writes: native Gelu and the BiasGelu plugin."""

import ml_dtypes
import numpy as np
import pytest
from gelu_chains import cast_wrapped, erf_torchscript, tanh_gelu_new, tanh_sigmoid, with_bias
from gelu_checks import op_types, run_pass

CASES = {
    "erf": lambda: with_bias(erf_torchscript, (16,))[0],
    "tanh": lambda: with_bias(tanh_gelu_new, (16,))[0],
    "sigmoid-tanh": lambda: with_bias(tanh_sigmoid, (16,))[0],
    "fp16-cast-wrapped": lambda: cast_wrapped(tanh_gelu_new),
    "fp16": lambda: with_bias(erf_torchscript, (16,), dtype=np.float16)[0],
    "bf16": lambda: with_bias(tanh_gelu_new, (16,), dtype=ml_dtypes.bfloat16)[0],
}


@pytest.mark.trt
@pytest.mark.parametrize("case", sorted(CASES))
def test_native_output_builds(case, build_engine):
    fused, report = run_pass(CASES[case]())
    assert "Gelu" in op_types(fused), report.summary()
    assert len(build_engine(fused.SerializeToString())) > 0


@pytest.mark.trt
@pytest.mark.parametrize("case", sorted(CASES))
def test_plugin_output_builds_with_the_plugin_library(case, build_engine, plugin_library):
    fused, report = run_pass(CASES[case](), target="plugin")
    assert op_types(fused) == ["BiasGelu"], report.summary()
    assert len(build_engine(fused.SerializeToString(), plugin_libraries=[plugin_library])) > 0

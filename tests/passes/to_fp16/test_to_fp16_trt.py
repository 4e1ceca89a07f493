"""The converted models are strongly typed networks TensorRT builds as they are: TensorRT-RTX for SM89, on CPU,
with no precision flag (there is none: TensorRT-RTX, like TensorRT 11, is always strongly typed)."""

import pytest
from models import batches_for, masked_attention_batches, masked_attention_model, overflow_layernorm_model

from polygraphy_ext.passes.precision import to_low_precision

pytestmark = pytest.mark.trt


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
@pytest.mark.parametrize("case", ["overflow_layernorm", "masked_attention"])
def test_converted_model_builds_with_tensorrt_rtx(build_engine, case, dtype):
    if case == "overflow_layernorm":
        model = overflow_layernorm_model()
        batches = batches_for(model)
    else:
        model = masked_attention_model()
        batches = masked_attention_batches()
    converted, report = to_low_precision(model, batches, dtype=dtype)
    assert report.low_nodes
    engine = build_engine(converted.SerializeToString())
    assert len(engine) > 1000

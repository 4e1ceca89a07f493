"""The real-export corpus below opset 18 (TorchScript at 11/14/16, tf2onnx), raised to 20 without shape
inference: every file upgrades (nothing refused), passes the full checker and onnxruntime gives bit-identical
outputs."""

import numpy as np
import onnx
import pytest

import corpus
from polygraphy_ext.numerics import generate_inputs
from upgrade_checks import run, upgrade

OLD = [entry for entry in corpus.entries() if entry.opset < 18]
SYMBOL_SIZES = {"batch": 2, "height": 32, "width": 32}


def _size(dim) -> int:
    if dim.dim_value:
        return dim.dim_value
    # "past_sequence+sequence" (GPT-2's mask) is the sum of its parts, which the past/sequence inputs use.
    return sum(SYMBOL_SIZES.get(part, 3) for part in dim.dim_param.split("+"))


def _feeds(model):
    dims = {d.dim_param: _size(d) for value in model.graph.input for d in value.type.tensor_type.shape.dim}
    feeds = generate_inputs(model, "random", dim_values=dims)
    for name, value in feeds.items():
        if not np.issubdtype(value.dtype, np.floating):  # token ids 0 exist in every vocabulary; masks keep all
            feeds[name] = (np.ones_like if "mask" in name else np.zeros_like)(value)
    return feeds


def test_the_corpus_has_old_opset_exports():
    assert {11, 14, 16} <= {entry.opset for entry in OLD} and len(OLD) >= 25


@pytest.mark.parametrize("entry", OLD, ids=corpus.ids(OLD))
def test_corpus_model_upgrades_to_20_exactly(entry):
    original = onnx.load(str(entry.path))
    upgraded, report = upgrade(original, 20)
    onnx.checker.check_model(upgraded, full_check=True)
    if entry.exporter == "torchscript":
        assert report.per_op().get("ReduceMean", 0) > 0  # its LayerNorms/RMSNorms are ReduceMean chains
    feeds = _feeds(original)
    for expected, actual in zip(run(original, feeds), run(upgraded, feeds)):
        np.testing.assert_array_equal(expected, actual)

"""ConvertToMixedPrecision as a Polygraphy loader: a constant functor, fed by Polygraphy data loaders or lists."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from models import OVERFLOW_NODES, batches_for, overflow_layernorm_model
from polygraphy.exception import PolygraphyException

from polygraphy_ext.passes.precision.loader import ConvertToMixedPrecision

HERE = Path(__file__).resolve().parent

CONSTANT_FUNCTOR = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
from models import overflow_layernorm_model, batches_for
from polygraphy.comparator import DataLoader
from polygraphy_ext.passes.precision.loader import ConvertToMixedPrecision
model = overflow_layernorm_model()
convert = ConvertToMixedPrecision(model, data_loader=batches_for(model))
generated = ConvertToMixedPrecision(model, data_loader=DataLoader(iterations=2, val_range=(-3, 3)))
for loader in (convert, generated, convert):
    loader()
print(sorted(n.name for n in convert.report.fp32_nodes) == sorted({sorted(OVERFLOW_NODES)!r}),
      generated.report.num_batches, generated.report.default_data)
"""


def test_loader_is_a_constant_functor_under_polygraphy_correctness_checks():
    env = dict(os.environ, POLYGRAPHY_INTERNAL_CORRECTNESS_CHECKS="1")
    proc = subprocess.run([sys.executable, "-c", CONSTANT_FUNCTOR], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # A Polygraphy DataLoader is generated data unless told otherwise: the report says so.
    assert proc.stdout.split()[-3:] == ["True", "2", "True"]


def test_report_is_none_before_the_first_call_and_the_input_model_stays():
    model = overflow_layernorm_model()
    before = model.SerializeToString()
    convert = ConvertToMixedPrecision(model, data_loader=batches_for(model), data_is_generated=False)
    assert convert.report is None
    converted = convert()
    assert model.SerializeToString() == before
    assert converted is not model and {n.name for n in convert.report.fp32_nodes} == OVERFLOW_NODES
    assert convert.report.default_data is False


def test_a_batch_missing_an_input_is_one_line():
    model = overflow_layernorm_model()
    with pytest.raises(PolygraphyException, match="batch 0 of the data loader lacks input"):
        ConvertToMixedPrecision(model, data_loader=[{"other": None}])()


def test_a_failing_data_loader_is_one_line():
    def broken():
        yield from batches_for(overflow_layernorm_model(), n=1)
        raise OSError("disk gone")

    with pytest.raises(PolygraphyException, match="data loader failed: disk gone"):
        ConvertToMixedPrecision(overflow_layernorm_model(), data_loader=broken())()

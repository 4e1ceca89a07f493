"""The fitted erf behind 16-bit BiasGelu: the kernel's coefficients are the fitting tool's, and they pass its checks."""

import re
import sys
from pathlib import Path

import numpy as np

TOOLS = Path(__file__).resolve().parents[2] / "trt_plugins" / "tools"
KERNEL = Path(__file__).resolve().parents[2] / "trt_plugins" / "plugins" / "bias_gelu" / "bias_gelu_kernel.cu"
sys.path.insert(0, str(TOOLS))
import fit_gelu_erf  # noqa: E402


def kernel_coefficients():
    """geluErfFit's Horner constants in the order the polynomial uses them (a^0 first)."""
    body = KERNEL.read_text().split("geluErfFit(float v)", 1)[1].split("approxExp2", 1)[0]
    return np.array([float(c) for c in re.findall(r"-?\d+\.\d+(?:e-?\d+)?(?=f)", body)], dtype=np.float32)


def test_kernel_uses_the_tools_coefficients():
    # To a few float32 ulps: another LAPACK may round the least-squares solves differently.
    np.testing.assert_allclose(kernel_coefficients(), fit_gelu_erf.fit(7, 7.0), rtol=1e-5)


def test_fit_is_within_a_small_fraction_of_an_ulp(capsys):
    assert fit_gelu_erf.main([]) == 0
    report = capsys.readouterr().out
    assert "fp16: worst error" in report and "bf16: worst error" in report


def test_a_fit_that_overflows_for_large_inputs_is_rejected():
    # Degree 6 on [0, 5] ends with a positive coefficient: g(a) -> +inf, so gelu(-100) would be -inf.
    assert fit_gelu_erf.fit(6, 5.0)[-1] > 0
    assert fit_gelu_erf.main(["--degree", "6", "--range", "5"]) == 1


def test_kernel_formula_saturates_like_the_reference():
    got = fit_gelu_erf.kernel_gelu(kernel_coefficients(), np.array([np.inf, -np.inf, np.nan, -1e4, 1e4], np.float32))
    assert got[0] == np.inf and np.isnan(got[1]) and np.isnan(got[2])
    assert got[3] == 0 and got[4] == 1e4

"""Fits the polynomial behind BiasGelu's exact (erf) GELU for 16-bit outputs, and checks it the way the kernel
evaluates it (fp32 Horner, then one rounding to fp16 / bf16).

The kernel computes gelu(v) = v * Phi(v) with Phi(-a) = 2^g(a), a = |v|, and Phi(v) = 1 - Phi(-|v|) for v >= 0.
g(a) ~ log2 Phi(-a) is smooth and close to a polynomial on [0, A], so a degree-7 g costs 7 FMAs and one exp2:
about half the arithmetic of erf through Abramowitz & Stegun 7.1.26 (reciprocal, exp2, 5 coefficients, sign
handling), with no 1 - erf cancellation for negative v.

    python trt_plugins/tools/fit_gelu_erf.py [--degree 7] [--range 7]

Prints the coefficients as C++ float literals (lowest power first) and the worst error over every finite
fp16 and bf16 input, in units of the output's ulp before rounding. Exits non-zero if the fit is not usable:
error above --max-ulp, or a leading coefficient >= 0 (g must fall to -inf as a grows, so that large or infinite
inputs give Phi(-a) = 0 instead of overflowing).
"""

import argparse
import math
import sys

import numpy as np


def log2_phi_neg(a):
    """log2 Phi(-a) in float64, through erfc (accurate in the tail, where 1 - erf would cancel)."""
    return np.array([math.log2(0.5 * math.erfc(x / math.sqrt(2.0))) for x in a])


def exact_gelu(x):
    return np.array([v * 0.5 * math.erfc(-v / math.sqrt(2.0)) for v in x])


def fit(degree, upper, iterations=400):
    """Minimax-weighted (Lawson) fit of log2 Phi(-a) on [0, upper]: its absolute error is the relative error of
    Phi(-a), which bounds the relative error of gelu(v) for negative v (and more for positive v)."""
    a = np.linspace(0.0, upper, 20001)
    target = log2_phi_neg(a)
    basis = np.vander(a / upper, degree + 1, increasing=True)
    weights = np.ones_like(a)
    for _ in range(iterations):
        root = np.sqrt(weights)
        coef, *_ = np.linalg.lstsq(basis * root[:, None], target * root, rcond=None)
        err = np.abs(basis @ coef - target)
        weights = weights * err + 1e-300
        weights /= weights.sum()
    return (coef / upper ** np.arange(degree + 1)).astype(np.float32)


def kernel_gelu(coef, x):
    """gelu(x) as the kernel computes it, in fp32 (exp2 itself exact here: the hardware's is within 2 ulp)."""
    x = x.astype(np.float32)
    a = np.abs(x)
    g = np.full_like(x, coef[-1])
    with np.errstate(over="ignore", invalid="ignore"):
        for c in coef[-2::-1]:
            g = (g * a + c).astype(np.float32)
        h = np.exp2(g.astype(np.float64)).astype(np.float32)
        h[h < np.float32(2.0**-126)] = 0  # ex2.approx.ftz flushes subnormal results
        phi = np.where(x >= 0, np.float32(1) - h, h).astype(np.float32)
        return (x * phi).astype(np.float32)


def all_values(dtype):
    """Every finite value of a 16-bit type, as float32."""
    bits = np.arange(1 << 16, dtype=np.uint32)
    if dtype == "fp16":
        values = bits.astype(np.uint16).view(np.float16).astype(np.float32)
    else:
        values = (bits << 16).view(np.float32)
    return values[np.isfinite(values)]


def ulp(values, dtype):
    """The output type's ulp at each (float64) value, subnormals included."""
    mantissa, min_exp = (10, -14) if dtype == "fp16" else (7, -126)
    exp = np.floor(np.log2(np.maximum(np.abs(values), 2.0**min_exp)))
    return 2.0 ** (exp - mantissa)


def worst_ulp_error(coef, dtype, limit):
    """Worst |kernel - exact| in output ulps over every finite input with |x| <= limit."""
    x = all_values(dtype)
    x = x[np.abs(x) <= limit]
    exact = exact_gelu(x.astype(np.float64))
    err = np.abs(kernel_gelu(coef, x).astype(np.float64) - exact) / ulp(exact, dtype)
    worst = int(np.argmax(err))
    return float(err[worst]), float(x[worst])


def tail_stays_below_exact(coef, dtype, limit):
    """Below -limit (outputs under ~1e-11, where the fit is extrapolated), the kernel's value must lie between 0 and
    the exact value: it may reach zero early, as fp32 torch does from about -5.5, but never overshoot."""
    x = all_values(dtype)
    x = x[(x < -limit) & (x > -40.0)]
    got = kernel_gelu(coef, x).astype(np.float64)
    exact = exact_gelu(x.astype(np.float64))
    return bool(np.all((got <= 0) & (got >= exact)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--degree", type=int, default=7)
    parser.add_argument("--range", type=float, default=7.0, help="fit log2 Phi(-a) on [0, RANGE]")
    parser.add_argument("--max-ulp", type=float, default=0.05, help="largest acceptable error, in output ulps")
    args = parser.parse_args(argv)

    coef = fit(args.degree, args.range)
    print("coefficients (a^0 first):", ", ".join(f"{float(c):.9g}f" for c in coef))
    ok = coef[-1] < 0
    if not ok:
        print(f"leading coefficient {coef[-1]:.3g} >= 0: g would overflow for large |v|")
    extremes = np.array([np.inf, -np.inf, np.nan, 3e38, -3e38, 1e4, -1e4, 100, -100], dtype=np.float32)
    print("gelu of", list(extremes), "=", list(kernel_gelu(coef, extremes)))
    for dtype in ("fp16", "bf16"):
        # Beyond 9, fp16's exact gelu is x or rounds to zero; bf16 keeps outputs down to 1e-38.
        limit = 9.0 if dtype == "fp16" else args.range
        err, at = worst_ulp_error(coef, dtype, limit)
        print(f"{dtype}: worst error {err:.4f} ulp (at x = {at:g}) over every finite input with |x| <= {limit:g}")
        ok &= err <= args.max_ulp
        tail = tail_stays_below_exact(coef, dtype, limit)
        print(f"{dtype}: below x = -{limit:g}, every output between 0 and exact: {tail}")
        ok &= tail
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

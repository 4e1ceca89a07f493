"""GPU correctness of every plugin through its creator and enqueue (tools/harness.cpp), against float64 torch.

Runs where a CUDA GPU and torch with CUDA exist (CI has none: skipped). The library is the installed one, or the
one named by POLYGRAPHY_EXT_PLUGIN_LIBRARY (e.g. a GPU-machine build). The sweep is a representative list of
the issue's cross product (dtypes x hidden sizes x row counts x misaligned views), not all of it.
"""

import math
import os
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "trt_plugins" / "tools"))
from plugin_cases import PLUGINS, Case, make_tensors, reference, tolerance  # noqa: E402

pytestmark = pytest.mark.gpu

# The issue's sizes plus each side of the kernels' geometry limits: 6143/6145 (odd: the scalar path's last row
# held on chip / first streamed row), 16392 (vectorized: first streamed row after 16384 for rows held as fp32;
# held as 16-bit vectors, LayerNorm/RMSNorm keep it on chip up to 32768, 32776 is their first streamed row).
HIDDEN = (1, 3, 64, 255, 256, 320, 640, 768, 1000, 1024, 2048, 4096, 5120, 6143, 6145, 8192, 12288, 16384, 16392, 32768,
          32776, 65536)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    from plugin_harness import PluginHarness

    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device")
    library = os.environ.get("POLYGRAPHY_EXT_PLUGIN_LIBRARY")
    if not library:
        from polygraphy_ext.plugins.library import shipped_library_path

        library = shipped_library_path()
    if not library:
        pytest.skip("no plugin library (set POLYGRAPHY_EXT_PLUGIN_LIBRARY)")
    return PluginHarness(library, build_dir=tmp_path_factory.mktemp("harness"))


def run_and_check(harness, case: Case, mutate=None, rows_to_check=None):
    torch.manual_seed(hash((case.plugin, case.rows, case.hidden, str(case.dtype))) % 2**31)
    inputs, outputs = make_tensors(case)
    if mutate:
        mutate(inputs)
    harness.run(case.plugin, case.fields(), inputs, outputs)
    torch.cuda.synchronize()
    if rows_to_check is not None:
        inputs = [t[rows_to_check] if t.dim() == 2 else t for t in inputs]
        outputs = [t[rows_to_check] for t in outputs]
    expected = reference(case, inputs)
    atol, rtol = tolerance(case.dtype)
    for name, got, want in zip(case.output_names(), outputs, expected):
        torch.testing.assert_close(got.double(), want, atol=atol, rtol=rtol, equal_nan=True,
                                   msg=lambda m: f"{case} output {name}: {m}")


def sweep():
    cases = []
    for plugin in PLUGINS:
        for dname, dtype in DTYPES.items():
            for hidden in HIDDEN:
                rows = (7, 64) if hidden > 16392 else (7, 4096)
                for r in rows:
                    cases.append(Case(plugin, r, hidden, dtype))
            # 1000 rows of H=5120: more than one resident wave of 16-bit rows held packed at 5 vectors per thread
            cases.append(Case(plugin, 1000, 5120, dtype))
            # gamma/beta/bias in fp32 with 16-bit activations, on the vectorized and the scalar path
            if dtype != torch.float32:
                for hidden in (255, 1024, 8192):
                    cases.append(Case(plugin, 33, hidden, dtype, param_dtype=torch.float32))
        for rows, hidden in ((0, 768), (1, 1), (1, 16384), (1 << 20, 1), (1 << 20, 3), (1 << 20, 64), (1 << 20, 256)):
            cases.append(Case(plugin, rows, hidden, torch.float16))
    cases.append(Case("BiasGelu", 4096, 1024, torch.float16, approximate="tanh"))
    cases.append(Case("BiasGelu", 7, 255, torch.float32, approximate="tanh"))
    cases.append(Case("SkipLayerNorm", 4096, 768, torch.float16, output_sum=False))
    # 16-bit rows with skip whose block is alone on its multiprocessor come through shared memory: fp32 params, no sum
    cases.append(Case("SkipLayerNorm", 600, 12288, torch.bfloat16, param_dtype=torch.float32))
    cases.append(Case("SkipLayerNorm", 600, 16384, torch.float16, output_sum=False))
    # Every SkipLayerNorm operand policy (bias and the residual sum are compile-time choices of the kernels) on every
    # path: lane groups, block rows, staged rows (16-bit H=12288), streamed rows, the 1-element path.
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        for bias in (False, True):
            for output_sum in (False, True):
                for hidden in (255, 256, 768, 4096, 12288, 32776):
                    cases.append(Case("SkipLayerNorm", 600, hidden, dtype, bias=bias, output_sum=output_sum))
                # Rows held light (more rows than one wave of the on-chip kernel): lane groups (256), 3 and 4 vectors
                # per thread where 2 leave lanes idle (16-bit 768, 640), block rows of 2, 4 and (fp32 with bias) 8.
                for rows, hidden in ((20000, 256), (20000, 640), (20000, 768), (3000, 4096), (2000, 8192),
                                     (2000, 12288)):
                    cases.append(Case("SkipLayerNorm", rows, hidden, dtype, bias=bias, output_sum=output_sum))
    # Rows of x alone held light: fp32 at 2 vectors (256), 4 packed (768) and 8 packed (5120, 12288); 16-bit at 3
    # packed (RMSNorm 768), 4 packed (256, RMSNorm up to 2048) and 8 packed (LayerNorm from 768 on, RMSNorm 5120 and
    # 12288), with beta, without (RMSNorm), and with fp32 params.
    for plugin in ("LayerNorm", "RMSNorm"):
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            for rows, hidden in ((20000, 256), (20000, 768), (8000, 2048), (3000, 5120), (2000, 12288)):
                cases.append(Case(plugin, rows, hidden, dtype))
        cases.append(Case(plugin, 8000, 1024, torch.bfloat16, param_dtype=torch.float32))
    return cases


@pytest.mark.parametrize(
    "case", sweep(), ids=lambda c: f"{c.plugin}-{str(c.dtype)[6:]}-p{str(c.param_dtype)[6:]}-R{c.rows}-H{c.hidden}"
    + ("" if c.output_sum else "-nosum") + ("" if c.bias else "-nobias") + ("-tanh" if c.approximate == "tanh" else "")
)
def test_sweep(harness, case):
    run_and_check(harness, case)


def misaligned_cases():
    cases = []
    for plugin in PLUGINS:
        probe = Case(plugin, 1, 1, torch.float32)
        names = probe.input_names() + probe.output_names()
        for dtype in (torch.float16, torch.float32):
            for name in names:
                cases.append(Case(plugin, 37, 1024, dtype, offsets={name: 1}))
    return cases


@pytest.mark.parametrize("case", misaligned_cases(), ids=lambda c: f"{c.plugin}-{str(c.dtype)[6:]}-{list(c.offsets)[0]}")
def test_offset_view_of_each_tensor(harness, case):
    run_and_check(harness, case)


@pytest.mark.parametrize("plugin", ["LayerNorm", "SkipLayerNorm", "RMSNorm"])
def test_fp16_rows_near_1e4_do_not_overflow(harness, plugin):
    def scale(inputs):
        inputs[0].mul_(1e4).clamp_(-6e4, 6e4)

    run_and_check(harness, Case(plugin, 256, 4096, torch.float16), mutate=scale)


@pytest.mark.parametrize("plugin", ["LayerNorm", "SkipLayerNorm"])
@pytest.mark.parametrize("hidden", [256, 4096, 65536])  # rows per lane group, per block (warps merged), streamed
# fp16 LayerNorm at H=256: rows held packed (loaded ahead); 16 rows of 4096 stay fp32-held
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_constant_rows_with_tiny_epsilon_give_beta(harness, plugin, hidden, dtype):
    case = Case(plugin, 16, hidden, dtype, epsilon=1e-12)

    def constant(inputs):
        inputs[0].copy_(torch.randn(16, 1, device="cuda").expand(16, hidden))
        if plugin == "SkipLayerNorm":
            inputs[1].zero_()
            inputs[4].zero_()

    run_and_check(harness, case, mutate=constant)


# 1024: 16-bit rows held packed and loaded ahead, 32 lanes per row; 5120: a block per row (64 rows keep it fp32-held)
@pytest.mark.parametrize("hidden", [1024, 5120])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_rows_around_a_large_common_offset(harness, hidden, dtype):
    # Offset 300-200x the spread: E[x^2] - E[x]^2, or sums of x that round, would be off by percents here.
    spread = 30.0 if dtype == torch.float16 else 50.0  # about 4 and 1 of the 16-bit type's steps at 1e4 (8, 64)

    def offset(inputs):
        inputs[0].copy_(1e4 + spread * torch.randn(inputs[0].shape, device="cuda"))

    run_and_check(harness, Case("LayerNorm", 64, hidden, dtype), mutate=offset)


def every_finite_value(dtype):
    """All finite values of a 16-bit type, as a (rows, 256) tensor: fp16 has 63488 of them, bf16 65280."""
    bits = torch.arange(-(1 << 15), 1 << 15, dtype=torch.int32).to(torch.int16)
    values = bits.view(dtype)
    values = values[torch.isfinite(values)]
    return values.view(-1, 256).cuda()


def exact_gelu(x, approximate):
    """float64 GELU in forms without cancellation, so that tiny negative results are right to the last bit."""
    x = x.double()
    if approximate == "tanh":
        return x * torch.sigmoid(2 * math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))
    return x * 0.5 * torch.special.erfc(-x / math.sqrt(2))


def output_ulp(values, dtype):
    """The ulp of `dtype` at each float64 value, subnormals included."""
    info = torch.finfo(dtype)
    mantissa = {torch.float16: 10, torch.bfloat16: 7}[dtype]
    exponent = torch.floor(torch.log2(values.abs().clamp(min=info.smallest_normal)))
    return torch.exp2(exponent - mantissa)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_gelu_of_every_16_bit_value_is_within_one_ulp(harness, dtype, approximate):
    # 16-bit GELU evaluates erf through a fitted polynomial (trt_plugins/tools/fit_gelu_erf.py): within one ulp of
    # exact GELU for every input whose result the type can hold to full precision; below x = -7 bf16 results
    # (under 1e-11) may reach zero early, never overshoot by more than one ulp.
    x = every_finite_value(dtype)
    case = Case("BiasGelu", x.shape[0], x.shape[1], dtype, approximate=approximate)
    inputs, outputs = make_tensors(case)
    inputs[0].copy_(x)
    inputs[1].zero_()
    harness.run(case.plugin, case.fields(), inputs, outputs)
    torch.cuda.synchronize()
    got = outputs[0].double().flatten()
    x = x.double().flatten()
    exact = exact_gelu(x, approximate)
    full = x.abs() <= (9.0 if dtype == torch.float16 else 7.0)
    err = (got - exact).abs() / output_ulp(exact, dtype)
    worst = int(torch.argmax(torch.where(full, err, 0)))
    assert err[full].max() <= 1.0, f"gelu({x[worst].item()}) = {got[worst].item()}, exact {exact[worst].item()}"
    tail = ~full & (x < 0)
    floor = exact[tail] - output_ulp(exact[tail], dtype)
    assert torch.all((got[tail] <= 0) & (got[tail] >= floor)), "tail results must lie between exact (to 1 ulp) and 0"
    assert torch.equal(got[~full & (x > 0)], x[~full & (x > 0)])


@pytest.mark.parametrize("plugin", PLUGINS)
@pytest.mark.parametrize("hidden", [256, 4096])  # fp32: 16 lanes per row; eight warps per row
def test_nan_and_inf_propagate_like_reference(harness, plugin, hidden):
    def poison(inputs):
        inputs[0][0, 5] = float("nan")
        inputs[0][1, 9] = float("inf")
        inputs[0][2, 0] = float("-inf")

    run_and_check(harness, Case(plugin, 8, hidden, torch.float32), mutate=poison)


@pytest.mark.parametrize("plugin", ["LayerNorm", "BiasGelu"])
def test_more_than_2_pow_31_elements(harness, plugin):
    hidden = 4096
    rows = (1 << 31) // hidden + 3
    case = Case(plugin, rows, hidden, torch.float16)
    check = torch.cat([torch.arange(0, 4), torch.arange(rows - 4, rows)]).cuda()
    run_and_check(harness, case, rows_to_check=check)


def test_rejected_fields_return_null_with_logged_error(harness):
    assert harness.create("LayerNorm", {"epsilon": -1.0}) is None
    assert "epsilon" in harness.last_error()
    assert harness.create("BiasGelu", {"approximate": "fast"}) is None
    assert "approximate" in harness.last_error()
    assert harness.create("RMSNorm", {"epsilom": 1e-6}) is None
    assert "unknown field 'epsilom'" in harness.last_error()

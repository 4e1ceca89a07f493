"""Every matched variant fuses into exactly one op and computes the same outputs (fp32 and a float64 twin)."""

import numpy as np
import pytest

from fuse_ln_chains import build, variant
from fuse_ln_checks import assert_equivalent, assert_fuses_exactly, op_types, run_pass

LAYERNORM_VARIANTS = {
    "classic": variant(),
    "operands-swapped": variant(swap_operands=True),
    "duplicated-sub": variant(duplicated_sub=True),
    "square-as-mul": variant(square="mul"),
    "mul-reciprocal": variant(inv="reciprocal"),
    "pow-minus-half": variant(inv="pow"),
    "mul-div-one": variant(inv="div_one"),
    "no-affine": variant(gamma=False, beta=False),
    "scale-only": variant(beta=False),
    "bias-only": variant(gamma=False),
    "gamma-behind-identity": variant(gamma_identity=True),
    "gamma-and-beta-behind-identity": variant(gamma_identity=True, beta_identity=True),
    "eps-constant-node": variant(eps_kind="constant_node"),
    "eps-first-input": variant(eps_first=True),
    "eps-fp16-cast": variant(eps_dtype=np.float16),
    "eps-shape-1": variant(eps_shape=(1,)),
    "cast-around-pow": variant(cast_around_pow=True),
    "cast-exponent": variant(cast_exponent=True),
    "axes-input-opset18": variant(opset=18),
    "positive-axes": variant(axes=(2,)),
    "multi-axis": variant(shape=(2, 3, 4, 8), axes=(-2, -1)),
    "multi-axis-positive": variant(shape=(2, 3, 4, 8), axes=(3, 2)),
    "reduce-all-known-rank": variant(shape=(4, 8), axes=None, gamma_shape=(4, 8), beta_shape=(4, 8)),
    "gamma-with-leading-ones": variant(gamma_shape=(1, 1, 16)),
    "not-topologically-sorted": variant(shuffle=True, seed=3),
    "opset17-no-raise-needed": variant(opset=17),
}


@pytest.mark.parametrize("name", sorted(LAYERNORM_VARIANTS))
def test_layernorm_variant_fuses_exactly(name):
    assert_fuses_exactly(build, LAYERNORM_VARIANTS[name])


@pytest.mark.parametrize(
    "spec",
    [variant(eps_first=True), variant(eps_kind="constant_node", eps_first=True), variant(eps_dtype=np.float16)],
    ids=["first-input", "constant-node-first-input", "fp16"],
)
def test_epsilon_is_the_stored_value(spec):
    # Exactly the value in the model (an fp16 eps of 1e-3 is 0.0010004...), never a default of the fuser's.
    fused, report = run_pass(build(spec))
    (node,) = [n for n in fused.graph.node if n.op_type == "LayerNormalization"]
    stored = float(np.asarray(spec.eps, dtype=spec.eps_dtype or spec.dtype))
    assert report.fused[0].epsilon == stored
    assert next(a.f for a in node.attribute if a.name == "epsilon") == np.float32(stored)


def test_reduce_all_becomes_a_normalization_over_every_axis():
    # Reducing all axes of a rank-2 input is LayerNormalization(axis=-2), never the usual axis=-1.
    fused, report = assert_fuses_exactly(build, LAYERNORM_VARIANTS["reduce-all-known-rank"])
    (node,) = [n for n in fused.graph.node if n.op_type == "LayerNormalization"]
    assert next(a.i for a in node.attribute if a.name == "axis") == -2 and report.fused[0].axis == -2


def test_unsorted_variant_really_is_unsorted():
    model = build(LAYERNORM_VARIANTS["not-topologically-sorted"])
    produced = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer}
    in_order = True
    for node in model.graph.node:
        in_order &= all(name in produced for name in node.input)
        produced.update(node.output)
    assert not in_order


def test_gamma_that_broadcasts_over_one_normalized_dim_is_expanded():
    spec = variant(shape=(2, 3, 4, 8), axes=(-2, -1), gamma_shape=(8,), beta_shape=(4, 1))
    fused, _ = assert_fuses_exactly(build, spec)
    scale = next(t for t in fused.graph.initializer if t.name.endswith("_scale"))
    assert list(scale.dims) == [4, 8]


def test_tf_keras_folded_gamma_form():
    # tf2onnx: Rsqrt -> Sqrt + Reciprocal; k = rsqrt * gamma; y = x * k + (beta - mean * k).
    # x * k - mean * k cancels in the ORIGINAL on large-mean rows (ulp(x * k) ~ 1e-5), so fp32 is compared on
    # random rows; the float64 twin proves the rewrite exact on all three kinds.
    kinds = ("random",)
    fused, report = assert_fuses_exactly(build, variant(form="folded", inv="reciprocal"), fp32_kinds=kinds)
    assert report.fused[0].pattern == "layernorm-folded-gamma"
    assert_fuses_exactly(build, variant(form="folded", inv="reciprocal", beta=False), fp32_kinds=kinds)
    assert_fuses_exactly(build, variant(form="folded", inv="pow", gamma=False), fp32_kinds=kinds)
    assert_fuses_exactly(build, variant(form="folded", inv="reciprocal", gamma_identity=True), fp32_kinds=kinds)


def test_moments_form():
    # E[x^2] - E[x]^2 in fp32 loses digits on large-mean / low-variance rows in the ORIGINAL model, so fp32
    # is compared on random rows only; the float64 twin proves the rewrite exact on all three kinds.
    _, report = assert_fuses_exactly(build, variant(form="moments"), fp32_kinds=("random",))
    assert report.fused[0].pattern == "layernorm-moments"


def test_leading_fp16_cast_stays_outside_and_fuses():
    spec = variant(leading_cast=True)
    fused, report = assert_fuses_exactly(build, spec)
    assert "Cast" in op_types(fused)  # the leading fp16->fp32 Cast is the fused op's input, untouched


def test_cast_between_div_and_mul_outputs_the_original_dtype():
    model = build(variant(cast_between_div_mul=True))
    fused, report = run_pass(model)
    assert len(report.fused) == 1
    assert report.fused[0].notes and "Casts inside the chain" in report.fused[0].notes[0]
    # The original rounds the normalized value to fp16 before the affine; the fused op rounds once at the end.
    assert_equivalent(model, fused, atol=2e-3)


def test_several_layernorms_sharing_one_input():
    import onnx
    from onnx import helper

    one = build(variant())
    two = build(variant(seed=1))
    graph = one.graph
    renamed = {n: f"b_{n}" for n in [t.name for t in two.graph.initializer] + [o for nd in two.graph.node for o in nd.output]}
    for node in two.graph.node:
        new = helper.make_node(
            node.op_type, [renamed.get(i, i) for i in node.input], [renamed[o] for o in node.output],
            name=f"b_{node.name}", domain=node.domain,
        )
        new.attribute.extend(node.attribute)
        graph.node.append(new)
    for init in two.graph.initializer:
        init.name = renamed[init.name]
        graph.initializer.append(init)
    graph.output.append(helper.make_tensor_value_info("b_y", onnx.TensorProto.FLOAT, [2, 3, 16]))
    fused, report = run_pass(one)
    assert len(report.fused) == 2
    assert op_types(fused).count("LayerNormalization") == 2
    assert_equivalent(one, fused)


def test_rmsnorm_t5_and_llama_forms():
    t5 = variant(form="rms", inv="reciprocal", beta=False, opset=18)
    assert_fuses_exactly(build, t5, op="RMSNormalization", rms=True)
    llama = variant(form="rms", inv="pow", beta=False, swap_operands=True, opset=18)
    assert_fuses_exactly(build, llama, op="RMSNormalization", rms=True)
    div = variant(form="rms", inv="div", gamma=False, beta=False, opset=18)
    assert_fuses_exactly(build, div, op="RMSNormalization", rms=True)


def test_rmsnorm_of_a_difference_fuses():
    # x = a - b is not a centered input (b is no mean), so the chain is an RMSNorm of x.
    model = build(variant(form="rms", inv="pow", beta=False, opset=18, residual=True))
    add = next(n for n in model.graph.node if n.op_type == "Add" and n.name == "residual_add")
    add.op_type = "Sub"
    fused, report = run_pass(model, rms=True)
    assert [c.pattern for c in report.fused] == ["rmsnorm"] and "Sub" in op_types(fused)
    assert_equivalent(model, fused)


def test_rmsnorm_is_reported_but_left_alone_without_rms():
    model = build(variant(form="rms", beta=False, opset=18))
    fused, report = run_pass(model)
    assert not report.fused
    assert report.candidates[0].pattern == "rmsnorm"
    assert "pass --rms" in report.candidates[0].reason


def test_running_twice_changes_nothing():
    model = build(variant())
    once, first = run_pass(model)
    twice, second = run_pass(once)
    assert len(first.fused) == 1
    assert not second.fused and [c.already_native for c in second.candidates] == [True]
    assert "1 already native (1 x LayerNormalization)" in second.summary()
    assert twice.graph.SerializeToString() == once.graph.SerializeToString()

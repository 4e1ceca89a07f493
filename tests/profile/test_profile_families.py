"""Family classification: TensorRT-made layers, Myelin kernel rows, op names, layer types, and --explain rules."""

import pytest

from polygraphy_ext.profile.families import classify


@pytest.mark.parametrize(
    "name, layer_type, family, rule",
    [
        ("Reformatting CopyNode for Input Tensor 0 to /encoder/Conv_3", None, "reformat", "reformat-name"),
        ("{ForeignNode[/encoder/layer.0/attention/self/MatMul.../Softmax]}", None, "myelin", "foreign-node"),
        ("input_to_nvm", None, "dla-transfer", "dla-transfer-name"),
        ("output_from_nvm", None, "dla-transfer", "dla-transfer-name"),
        ("__myl_MoveMeanSubMulMeanAddSqrtDivMulMulAdd_0x5c8e2e9d", None, "layernorm", "myelin-kernel:layernorm"),
        ("__myl_ExpSubMaxSumDiv_myl0_5", None, "attention", "myelin-kernel:attention"),
        ("__myl_MulAddErfMulMul_myl0_7", None, "pointwise", "myelin-kernel:pointwise"),
        ("__myl_ReshTranTran_myl0_3", None, "shape/copy", "myelin-kernel:shape/copy"),
        ("__myl_FcMulAdd_myl0_9", None, "gemm/conv", "myelin-kernel:gemm/conv"),
        ("_gemm_mha_v2_myl0_12", None, "attention", "attention-op"),
        ("sm90_xmma_gemm_f16f16_f16f32_f32_tn_n_tilesize128x128x64", None, "gemm/conv", "gemm-conv-op"),
        ("/encoder/layer.0/attention/self/query/MatMul", None, "gemm/conv", "gemm-conv-op"),
        ("/encoder/layer.0/attention/self/Softmax", None, "attention", "softmax-in-attention"),
        ("(Unnamed Layer* 12) [Softmax]", None, "other", "fallback"),
        ("/encoder/layer.0/output/LayerNorm/ReduceMean", None, "layernorm", "layernorm-module"),
        ("PWN(/encoder/layer.0/output/LayerNorm/Sub)", "PointWiseV2", "layernorm", "layernorm-module"),
        ("/decoder/norm/LayerNormalization", None, "layernorm", "layernorm-op"),
        ("(Unnamed Layer* 0) [Convolution] + (Unnamed Layer* 2) [Activation]", None, "gemm/conv", "gemm-conv-op"),
        ("(Unnamed Layer* 11) [Fully Connected]", None, "gemm/conv", "gemm-conv-op"),
        ("/blocks.0/input_quantizer/QuantizeLinear", None, "q/dq", "qdq-op"),
        ("/blocks.0/Transpose", None, "shape/copy", "shape-op"),
        ("PWN(/act/Sigmoid, /act/Mul)", None, "pointwise", "pointwise-op"),
        ("/head/Conv", "CaskConvolution", "gemm/conv", "type:gemm/conv"),
        ("layer_17", "Normalization", "layernorm", "type:layernorm"),
        ("mystery", "Shuffle", "shape/copy", "type:shape/copy"),
        ("mystery", None, "other", "fallback"),
    ],
)
def test_classify(name, layer_type, family, rule):
    result = classify(name, layer_type)
    assert (result.family, result.id) == (family, rule)
    assert result.description


def test_repeated_blocks_share_one_answer_but_not_across_different_ops():
    assert classify("/layer.3/attention/Softmax") == classify("/layer.11/attention/Softmax")
    assert classify("/layer.3/Transpose").family != classify("/layer.3/MatMul").family

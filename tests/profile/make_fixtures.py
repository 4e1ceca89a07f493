"""Regenerate the committed fixtures in tests/profile/fixtures/ (no TensorRT or GPU needed).

    python tests/profile/make_fixtures.py

Each file reproduces one variant of what trtexec writes (see trtexec_format.py for the format facts):
TensorRT 7 era without medianMs, 8.4+ with medianMs, no count element, unescaped quotes/backslashes in names,
several concatenated arrays, zero-time rows, TensorRT 10 Myelin kernel rows (``__myl_...``), ForeignNode
regions, DLA transfers, and --exportLayerInfo output at both verbosities. The numbers are made up but
shaped like real engines: the BERT pair mirrors a self-attention ForeignNode taking about half the time, and
"after" is the same engine once its LayerNorms were fused (polygraphy surgeon fuse-ln).
"""

import json
from pathlib import Path

from trtexec_format import Row, profile_text

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BLOCKS = 2


def _bert_rows(fused_layernorm: bool, renamed_pooler: bool):
    rows = [
        Row("/embeddings/Shape", 0.0),
        Row("/embeddings/word_embeddings/Gather", 0.021),
        Row("Reformatting CopyNode for Input Tensor 0 to {ForeignNode[/encoder/layer.0/attention/self/MatMul]}", 0.012),
    ]
    for block in range(BLOCKS):
        p = f"/encoder/layer.{block}"
        rows.append(
            Row(
                f"{{ForeignNode[{p}/attention/self/query/MatMul...{p}/attention/self/Softmax]}}",
                0.95 if block == 0 else 0.91,
            )
        )
        rows.append(Row(f"{p}/attention/output/dense/MatMul + {p}/attention/output/dense/Add", 0.118))
        for ln in (f"{p}/attention/output/LayerNorm", f"{p}/output/LayerNorm"):
            if fused_layernorm:
                rows.append(Row(f"{ln}/LayerNormalization", 0.052))
            else:
                rows += [
                    Row(f"{ln}/ReduceMean", 0.041),
                    Row(f"PWN({ln}/Sub)", 0.027),
                    Row(f"PWN({ln}/Pow) + {ln}/ReduceMean_1", 0.044),
                    Row(f"PWN(PWN(PWN({ln}/Add, {ln}/Sqrt), {ln}/Div), PWN({ln}/Mul, {ln}/Add_1))", 0.046),
                ]
            if ln.endswith("attention/output/LayerNorm"):
                rows.append(Row(f"{p}/intermediate/dense/MatMul + {p}/intermediate/intermediate_act_fn/Mul_1", 0.262))
                rows.append(Row(f"{p}/output/dense/input_quantizer/QuantizeLinear", 0.015))
                rows.append(Row(f"{p}/output/dense/MatMul + {p}/output/dense/Add", 0.241))
    rows.append(Row("/pooler/Unsqueeze", 0.0))
    rows.append(Row("/pooler/dense/Gemm_13" if renamed_pooler else "/pooler/dense/Gemm_12", 0.031))
    rows.append(Row("/pooler/Reshape" if renamed_pooler else "(Unnamed Layer* 97) [Shuffle]", 0.006))
    rows.append(Row("/pooler/activation/Tanh", 0.004))
    return rows


def _tensor(name, dims, fmt):
    return {"Name": name, "Location": "Device", "Dimensions": dims, "Format/Datatype": fmt}


def _layer_type(name):
    if name.startswith("{ForeignNode"):
        return "Myelin"
    if name.startswith("Reformatting"):
        return "Reformat"
    if "QuantizeLinear" in name:
        return "Quantize"
    if "MatMul" in name or "Gemm" in name:
        return "CaskGemmConvolution"
    if "LayerNormalization" in name:
        return "Normalization"
    if name.startswith("PWN") or "Tanh" in name:
        return "PointWiseV2"
    if "Shuffle" in name or "Reshape" in name or "Unsqueeze" in name:
        return "Shuffle"
    if "Reduce" in name:
        return "Reduce"
    return "Gather" if "Gather" in name else "NoOp"


def _detailed_layer(name, index):
    half = "Row major linear FP16 format"
    layer = {
        "Name": name,
        "LayerType": _layer_type(name),
        "Inputs": [_tensor(f"tensor_{index}", [8, 128, 768], half)],
        "Outputs": [_tensor(f"tensor_{index + 1}", [8, 128, 768], half)],
        "TacticName": "sm86_xmma_gemm_f16f16_f16f32_f32_nn_n_tilesize128x128x32_stage4" if "MatMul" in name else "",
        "StreamId": 0,
        "Metadata": f"[ONNX Layer: {name.split(' + ')[0]}]",
    }
    if "Quantize" in name:
        layer["Outputs"][0]["Format/Datatype"] = "Row major linear Int8 format"
    if name.startswith("(Unnamed") or name == "/pooler/Reshape":
        # The same op under two names in before/after: only its signature can pair it.
        layer["Inputs"][0]["Dimensions"] = [8, 768]
        layer["Outputs"][0]["Dimensions"] = [8, 1, 768]
    if not layer["TacticName"]:
        del layer["TacticName"]
    return layer


def _layer_info(rows, detailed: bool) -> str:
    names = [row.name for row in rows]
    bindings = ["input_ids", "attention_mask", "pooler_output"]
    if detailed:
        # trtexec writes the inspector's JSON as is (one layer object after another).
        return json.dumps({"Layers": [_detailed_layer(n, i) for i, n in enumerate(names)], "Bindings": bindings}, indent=2)
    return json.dumps({"Layers": names, "Bindings": bindings}, indent=1)


def _write(name: str, text: str):
    (FIXTURES / name).write_text(text, encoding="utf-8")


def main():
    FIXTURES.mkdir(exist_ok=True)
    before = _bert_rows(fused_layernorm=False, renamed_pooler=False)
    after = _bert_rows(fused_layernorm=True, renamed_pooler=True)
    _write("bert_before.json", profile_text(before, count=200))
    _write("bert_after.json", profile_text(after, count=250))
    _write("bert_before.layers.json", _layer_info(before, detailed=True))
    _write("bert_after.layers.json", _layer_info(after, detailed=True))
    _write("bert_after.names_only.layers.json", _layer_info(after, detailed=False))

    resnet = [
        Row("(Unnamed Layer* 0) [Convolution] + (Unnamed Layer* 2) [Activation]", 0.182),
        Row("(Unnamed Layer* 3) [Pooling]", 0.051),
        Row("(Unnamed Layer* 4) [Convolution] + (Unnamed Layer* 6) [Activation]", 0.143),
        Row("(Unnamed Layer* 7) [Convolution]", 0.139),
        Row("(Unnamed Layer* 9) [ElementWise] + (Unnamed Layer* 10) [Activation]", 0.038),
        Row("(Unnamed Layer* 11) [Fully Connected]", 0.021),
        Row("(Unnamed Layer* 12) [Softmax]", 0.006),
    ]
    # TensorRT 7 era: no medianMs; a trtexec of that time wrote the "ms" totals with this same shape.
    _write("trt7_resnet.prof", profile_text(resnet, count=500, median=False))
    _write("no_count.json", profile_text(resnet, count=1, median=True, count_element=False))

    odd_names = [
        Row('/model/"quoted"/Conv', 0.30),
        Row("C:\\models\\net\\bias_add", 0.10),
        Row("plain/Relu", 0.05),
    ]
    _write("unescaped_names.json", profile_text(odd_names, count=10))

    runs = [profile_text(resnet, count=n) for n in (10, 20, 30)]
    runs[0] = runs[0].replace("0.182", "9.99")  # makes run 1 recognizably different from the others
    _write("concatenated_runs.json", "".join(runs))

    trt10 = [
        Row("/embeddings/word_embeddings/Gather", 0.02),
        Row("__myl_AddCastMulMeanSubMulMeanAddSqrtDivMulCastMulAdd_myl0_1", 0.047),
        Row("__myl_MoveMeanSubMulMeanAddSqrtDivMulMulAdd_0x5c8e2e9d4b7a1f03", 0.043),
        Row("sm90_xmma_gemm_f16f16_f16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1_execute_segment_k_off_kernel__5x_cublas", 0.41),
        Row("_gemm_mha_v2_myl0_12", 0.38),
        Row("__myl_ExpSubMaxSumDiv_myl0_5", 0.06),
        Row("__myl_MulAddErfMulMul_myl0_7", 0.05),
        Row("__myl_ReshTranTran_myl0_3", 0.03),
        Row("__myl_Move_myl0_0", 0.0),
        Row("Reformatting CopyNode for Output Tensor 0 to __myl_ReshTranTran_myl0_3", 0.011),
    ]
    _write("trt10_myelin_kernels.json", profile_text(trt10, count=1000))

    dla = [
        Row("input_to_nvm", 0.09),
        Row("{ForeignNode[/backbone/conv1/Conv.../backbone/layer4/Relu]}", 2.4),
        Row("output_from_nvm", 0.08),
        Row("/head/Conv", 0.21),
    ]
    _write("dla.json", profile_text(dla, count=50))


if __name__ == "__main__":
    main()

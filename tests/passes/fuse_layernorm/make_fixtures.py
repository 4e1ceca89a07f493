"""Regenerate the real-exporter fixtures of the fuse-ln tests.

    pip install torch   # only needed to regenerate; the tests use the committed .onnx files
    python tests/passes/fuse_layernorm/make_fixtures.py [--no-torch] [--out DIR]   # DIR defaults to fixtures/

PyTorch fixtures are ``torch.onnx.export`` outputs (TorchScript exporter, ``dynamo=False``: the dynamo exporter
targets opset 18+ and keeps LayerNorm whole) of small BERT / ViT / DETR / Swin / T5 blocks at opsets 11-16,
where the exporter decomposes LayerNorm. The TF/Keras fixture is built node by node exactly as tf2onnx emits
a Keras LayerNormalization (tf.nn.moments + tf.nn.batch_normalization, Rsqrt -> Sqrt + Reciprocal,
SquaredDifference -> Sub + Mul, positive ReduceMean axes) and as Keras 3 writes it (-(mean * inv) + beta).
``EXPECTED`` lists how many norms each fixture holds; the tests assert exactly that many fuse.
"""

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FIXTURES = Path(__file__).resolve().parent / "fixtures"

# fixture file -> (number of LayerNorms, number of RMSNorms)
EXPECTED = {
    "bert_block_opset11.onnx": (3, 0),
    "bert_block_opset14.onnx": (3, 0),
    "vit_block_opset13.onnx": (3, 0),
    "detr_encoder_opset12.onnx": (3, 0),
    "swin_block_opset15.onnx": (3, 0),
    "t5_rmsnorm_opset16.onnx": (0, 2),
    "bert_block_fp16_opset13.onnx": (3, 0),
    "keras_layernorm_tf2onnx_opset13.onnx": (2, 0),
}


def _torch_fixtures(out: Path):
    import torch
    from torch import nn

    torch.manual_seed(0)
    hidden, heads = 32, 2

    class Attention(nn.Module):
        """Explicit attention math (nn.MultiheadAttention exports through SDPA, which needs opset 14+)."""

        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(hidden, 3 * hidden)
            self.proj = nn.Linear(hidden, hidden)

        def forward(self, x):
            b, s, _ = x.shape
            q, k, v = self.qkv(x).view(b, s, 3, heads, hidden // heads).permute(2, 0, 3, 1, 4)
            att = torch.softmax(q @ k.transpose(-1, -2) / (hidden // heads) ** 0.5, dim=-1)
            return self.proj((att @ v).transpose(1, 2).reshape(b, s, hidden))

    class BertBlock(nn.Module):
        """Embeddings LayerNorm + one post-LN encoder layer (attention and FFN, each residual + LayerNorm)."""

        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(50, hidden)
            self.emb_ln = nn.LayerNorm(hidden, eps=1e-12)
            self.attn = Attention()
            self.ln1 = nn.LayerNorm(hidden, eps=1e-12)
            self.ff1 = nn.Linear(hidden, 4 * hidden)
            self.ff2 = nn.Linear(4 * hidden, hidden)
            self.ln2 = nn.LayerNorm(hidden, eps=1e-12)

        def forward(self, ids):
            x = self.emb_ln(self.emb(ids))
            x = self.ln1(x + self.attn(x))
            return self.ln2(x + self.ff2(torch.nn.functional.gelu(self.ff1(x))))

    class VitBlock(nn.Module):
        """Patch embedding + one pre-LN block + final LayerNorm."""

        def __init__(self):
            super().__init__()
            self.patch = nn.Conv2d(3, hidden, 4, 4)
            self.ln1 = nn.LayerNorm(hidden, eps=1e-6)
            self.attn = Attention()
            self.ln2 = nn.LayerNorm(hidden, eps=1e-6)
            self.mlp = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.Linear(2 * hidden, hidden))
            self.norm = nn.LayerNorm(hidden, eps=1e-6)

        def forward(self, img):
            x = self.patch(img).flatten(2).transpose(1, 2)
            x = x + self.attn(self.ln1(x))
            x = x + self.mlp(self.ln2(x))
            return self.norm(x)

    class DetrEncoder(nn.Module):
        """DETR's post-LN encoder layer (positional embedding added to q/k only) plus the final encoder norm."""

        def __init__(self):
            super().__init__()
            self.attn = Attention()
            self.norm1 = nn.LayerNorm(hidden)
            self.ff = nn.Sequential(nn.Linear(hidden, 64), nn.ReLU(), nn.Linear(64, hidden))
            self.norm2 = nn.LayerNorm(hidden)
            self.norm = nn.LayerNorm(hidden)

        def forward(self, src, pos):
            x = self.norm1(src + self.attn(src + pos))
            x = self.norm2(x + self.ff(x))
            return self.norm(x)

    class SwinBlock(nn.Module):
        """LayerNorm on (B, H, W, C), window attention, and patch merging's LayerNorm over 4C."""

        def __init__(self):
            super().__init__()
            self.norm1 = nn.LayerNorm(hidden)
            self.attn = Attention()
            self.norm2 = nn.LayerNorm(hidden)
            self.mlp = nn.Linear(hidden, hidden)
            self.merge_norm = nn.LayerNorm(4 * hidden)
            self.reduction = nn.Linear(4 * hidden, 2 * hidden, bias=False)

        def forward(self, x):  # x: (B, H, W, C), H = W = 4, window 2
            b, h, w, c = x.shape
            y = self.norm1(x)
            win = y.view(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, 4, c)
            win = self.attn(win)
            y = win.view(b, h // 2, w // 2, 2, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
            x = x + y
            x = x + self.mlp(self.norm2(x))
            merged = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
            return self.reduction(self.merge_norm(merged))

    class T5RMSNorm(nn.Module):
        def __init__(self, eps=1e-6):
            super().__init__()
            self.weight = nn.Parameter(torch.rand(hidden) + 0.5)
            self.eps = eps

        def forward(self, x):
            variance = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
            return self.weight * (x * torch.rsqrt(variance + self.eps))

    class T5Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1 = T5RMSNorm()
            self.ff = nn.Linear(hidden, hidden, bias=False)
            self.norm2 = T5RMSNorm()

        def forward(self, x):
            return self.norm2(x + self.ff(self.norm1(x)))

    ids = torch.randint(0, 50, (1, 8))
    jobs = [
        ("bert_block_opset11.onnx", BertBlock(), (ids,), ["ids"], 11),
        ("bert_block_opset14.onnx", BertBlock(), (ids,), ["ids"], 14),
        ("vit_block_opset13.onnx", VitBlock(), (torch.randn(1, 3, 16, 16),), ["pixels"], 13),
        ("detr_encoder_opset12.onnx", DetrEncoder(), (torch.randn(1, 6, hidden), torch.randn(1, 6, hidden)), ["src", "pos"], 12),
        ("swin_block_opset15.onnx", SwinBlock(), (torch.randn(1, 4, 4, hidden),), ["x"], 15),
        ("t5_rmsnorm_opset16.onnx", T5Block(), (torch.randn(1, 8, hidden),), ["x"], 16),
        ("bert_block_fp16_opset13.onnx", BertBlock().half(), (ids,), ["ids"], 13),
    ]
    for name, model, args, input_names, opset in jobs:
        model.eval()
        path = out / name
        with torch.no_grad():
            torch.onnx.export(
                model, args, str(path), opset_version=opset, input_names=input_names, output_names=["out"],
                dynamo=False, do_constant_folding=True,
            )
        _finalize(path)


def _finalize(path):
    model = onnx.load(str(path))
    # onnxruntime 1.31 reads IR <= 13; pin what the exporter wrote to something every runtime reads.
    model.ir_version = min(model.ir_version, 8)
    onnx.save(onnx.shape_inference.infer_shapes(model), str(path))


def keras_tf2onnx_fixture(out: Path):
    """Dense -> LayerNormalization (tf.nn.batch_normalization form) -> Dense -> LayerNormalization (Keras 3 form)."""
    rng = np.random.default_rng(0)
    d = 16
    inits, nodes = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def node(op, inputs, output, **attrs):
        nodes.append(helper.make_node(op, inputs, [output], name=output.split(":")[0], **attrs))
        return output

    x = node("MatMul", ["input_1:0", const("model/dense/MatMul/ReadVariableOp:0", rng.normal(size=(d, d)))], "model/dense/MatMul:0")
    x = node("Add", [x, const("model/dense/BiasAdd/ReadVariableOp:0", rng.normal(size=d))], "model/dense/BiasAdd:0")
    outputs = []
    for prefix, keras3 in (("model/layer_normalization", False), ("model/layer_normalization_1", True)):
        p = prefix
        mean = node("ReduceMean", [x], f"{p}/moments/mean:0", axes=[2], keepdims=1)
        stop = node("Identity", [mean], f"{p}/moments/StopGradient:0")
        diff = node("Sub", [x, stop], f"{p}/moments/SquaredDifference__sub:0")
        sq = node("Mul", [diff, diff], f"{p}/moments/SquaredDifference:0")
        var = node("ReduceMean", [sq], f"{p}/moments/variance:0", axes=[2], keepdims=1)
        ve = node("Add", [var, const(f"{p}/batchnorm/add/y:0", 1e-3)], f"{p}/batchnorm/add:0")
        sqrt = node("Sqrt", [ve], f"{p}/batchnorm/Rsqrt__sqrt:0")
        inv = node("Reciprocal", [sqrt], f"{p}/batchnorm/Rsqrt:0")
        gamma = node("Identity", [const(f"{p}/gamma", rng.uniform(0.5, 1.5, d))], f"{p}/batchnorm/mul/ReadVariableOp:0")
        k = node("Mul", [inv, gamma], f"{p}/batchnorm/mul:0")
        xk = node("Mul", [x, k], f"{p}/batchnorm/mul_1:0")
        mk = node("Mul", [mean, k], f"{p}/batchnorm/mul_2:0")
        beta = const(f"{p}/beta", rng.uniform(-0.5, 0.5, d))
        if keras3:
            neg = node("Neg", [mk], f"{p}/Neg:0")
            offset = node("Add", [neg, beta], f"{p}/add:0")
        else:
            offset = node("Sub", [beta, mk], f"{p}/batchnorm/sub:0")
        y = node("Add", [xk, offset], f"{p}/batchnorm/add_1:0")
        outputs.append(y)
        if not keras3:
            x = node("Relu", [y], "model/dense_1/Relu:0")
    nodes.append(helper.make_node("Identity", [outputs[-1]], ["output_1"], name="Identity"))
    graph = helper.make_graph(
        nodes,
        "tf2onnx",
        [helper.make_tensor_value_info("input_1:0", TensorProto.FLOAT, ["unk__0", 8, d])],
        [helper.make_tensor_value_info("output_1", TensorProto.FLOAT, ["unk__1", 8, d])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="tf2onnx", ir_version=7)
    onnx.save(onnx.shape_inference.infer_shapes(model), str(out / "keras_layernorm_tf2onnx_opset13.onnx"))


def main():
    parser = argparse.ArgumentParser(description="Regenerate the fuse-ln real-exporter fixtures.")
    parser.add_argument("--no-torch", action="store_true", help="only the tf2onnx-style Keras fixture")
    parser.add_argument("--out", type=Path, default=FIXTURES, help=f"output directory (default {FIXTURES})")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    keras_tf2onnx_fixture(args.out)
    if not args.no_torch:
        _torch_fixtures(args.out)
    for path in sorted(args.out.glob("*.onnx")):
        print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()

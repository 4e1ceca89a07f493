"""Regenerate the TensorFlow/Keras part of the real-export corpus (tf2onnx), beside make_corpus.py's torch part.

    python3 -m venv .venv-tf
    .venv-tf/bin/pip install tensorflow-cpu tf2onnx onnxruntime
    .venv-tf/bin/python tests/corpus/make_keras.py

A small Keras 3 BERT-style encoder (embeddings + LayerNormalization, post-LN blocks of MultiHeadAttention and a
Dense FFN) built with a fixed seed and converted by ``tf2onnx.convert.from_keras`` with a dynamic batch and
sequence, as tf2onnx users do. Keras' default ``gelu`` (exact) calls ``Erfc``, which tf2onnx cannot convert: that
variant is kept to record the converter's failure; the tanh-approximated one is the file in the corpus.
Counts come from the built Keras model (its layers and the operations that feed them), never typed by hand.
"""

import functools
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import onnx  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import records  # noqa: E402

OPSETS = (13, 17)  # tf2onnx's long-time default, and the first with LayerNormalization
HIDDEN, HEADS, FFN, VOCAB, MAX_POS, LAYERS = 32, 2, 150, 200, 64, 2
SHAPES = ((2, 7), (3, 5))  # traced / checked (batch, sequence)


def build(exact_gelu):
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    gelu = keras.activations.gelu if exact_gelu else functools.partial(keras.activations.gelu, approximate=True)
    ids = keras.Input((None,), dtype="int32", name="input_ids")
    positions = layers.Lambda(lambda t: keras.ops.arange(keras.ops.shape(t)[1]), name="positions")(ids)
    x = layers.Embedding(VOCAB, HIDDEN, name="word_embeddings")(ids)
    x = x + layers.Embedding(MAX_POS, HIDDEN, name="position_embeddings")(positions)
    x = layers.LayerNormalization(epsilon=1e-12, name="embeddings_ln")(x)
    for i in range(LAYERS):
        attn = layers.MultiHeadAttention(HEADS, HIDDEN // HEADS, name=f"layer{i}_attention")(x, x)
        x = layers.LayerNormalization(epsilon=1e-12, name=f"layer{i}_attention_ln")(x + attn)
        h = layers.Dense(FFN, activation=gelu, name=f"layer{i}_ffn_in")(x)
        x = layers.LayerNormalization(epsilon=1e-12, name=f"layer{i}_output_ln")(x + layers.Dense(HIDDEN, name=f"layer{i}_ffn_out")(h))
    return keras.Model(ids, x, name="keras_bert")


def _all_layers(model):
    seen, stack = [], list(model.layers)
    while stack:
        layer = stack.pop(0)
        if layer in seen:
            continue
        seen.append(layer)
        stack += [sub for sub in getattr(layer, "_layers", []) if sub not in seen]
    return seen


def observe(model):
    """LayerNorms, GELUs by kind, residual Adds feeding a LayerNorm, and Dense widths, read off the Keras model."""
    import keras

    counts = {"layernorm": 0, "rmsnorm": 0, "gelu_erf": 0, "gelu_tanh": 0, "quick_gelu": 0, "residual_add_layernorm": 0}
    linears = []
    for layer in _all_layers(model):
        cls = type(layer).__name__
        if isinstance(layer, keras.layers.LayerNormalization):
            counts["layernorm"] += 1
            producer = layer._inbound_nodes[0].parent_nodes[0].operation
            # The embedding LN's input is a sum of embeddings, not a residual: only Adds whose operands include a
            # LayerNorm's output (the block input) count.
            if type(producer).__name__ == "Add" and any(
                isinstance(p.operation, keras.layers.LayerNormalization) for p in producer._inbound_nodes[0].parent_nodes
            ):
                counts["residual_add_layernorm"] += 1
        activation = getattr(layer, "activation", None)
        if activation is keras.activations.gelu:
            counts["gelu_erf"] += 1
        elif isinstance(activation, functools.partial) and activation.func is keras.activations.gelu:
            counts["gelu_tanh" if activation.keywords.get("approximate") else "gelu_erf"] += 1
        if cls in ("Dense", "EinsumDense"):
            kernel = layer.kernel.shape
            name = layer.path if hasattr(layer, "path") else layer.name
            if cls == "Dense":
                linears.append({"name": name, "type": cls, "in": int(kernel[0]), "out": int(kernel[-1]), "bias": layer.use_bias})
            else:  # MultiHeadAttention's projections: q/k/v [in, heads, head_dim], output [heads, head_dim, out]
                if layer.name == "attention_output":
                    width_in, width_out = int(np.prod(kernel[:-1])), int(kernel[-1])
                else:
                    width_in, width_out = int(kernel[0]), int(np.prod(kernel[1:]))
                linears.append({"name": name, "type": cls, "in": width_in, "out": width_out, "bias": layer.bias is not None})
    return counts, linears


def _feeds(variant):
    b, s = SHAPES[variant]
    rng = np.random.default_rng(variant)
    return {"input_ids": rng.integers(1, VOCAB, size=(b, s)).astype(np.int32)}


def export(model, opset, path):
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec((None, None), tf.int32, name="input_ids")]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset, output_path=str(path))
    return proto


def main():
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    records.MODELS_DIR.mkdir(parents=True, exist_ok=True)
    files, failures = [], []
    for name, exact, opsets in (("keras_bert", False, OPSETS), ("keras_bert_erf", True, OPSETS[:1])):
        model = build(exact)
        counts, linears = observe(model)
        for opset in opsets:
            fname = f"{name}_tf2onnx{opset}.onnx"
            print(f"  {fname} ...", flush=True)
            base = {"model": name, "exporter": "tf2onnx", "opset_requested": opset, "dtype": "float32"}
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    tmp_path = Path(tmp) / fname
                    export(model, opset, tmp_path)
                    onnx_model = onnx.load(str(tmp_path))
                    onnx.checker.check_model(onnx_model, full_check=True)
                    feeds = _feeds(1)
                    got = ort.InferenceSession(str(tmp_path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
                    want = model(feeds["input_ids"]).numpy()
                    diff = float(np.max(np.abs(got - want)))
                    if not diff <= 1e-3:
                        raise RuntimeError(f"onnxruntime differs from Keras by {diff:.3g} at shapes other than the traced ones")
                    path = records.MODELS_DIR / fname
                    os.replace(tmp_path, path)
            except Exception as err:  # a converter's failure is a corpus fact: record it, go on
                print(f"    FAILED: {records.first_line(err)}", flush=True)
                failures.append(dict(base, error=records.first_line(err)))
                continue
            files.append(
                records.file_record(
                    path,
                    onnx_model,
                    hf_class=f"keras.Model ({model.name})",
                    **base,
                    dynamic_axes={"input_ids": {"0": "batch", "1": "sequence"}},
                    input_constraints=f"sequence <= {MAX_POS} (position embeddings)",
                    export_shapes={"input_ids": list(SHAPES[0])},
                    ort_max_abs_diff=diff,
                    counts=counts,
                    module_classes={},
                    linears=linears,
                    odd_widths=records.odd_widths(linears),
                    config=dict(hidden=HIDDEN, heads=HEADS, ffn=FFN, vocab=VOCAB, max_positions=MAX_POS, layers=LAYERS,
                                gelu="exact (erf)" if exact else "tanh approximation"),
                )
            )
    import keras

    versions = {"tensorflow": tf.__version__, "keras": keras.__version__, "tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__}
    records.write_manifest({"tf2onnx"}, files, failures, {"tf2onnx": versions})


if __name__ == "__main__":
    main()

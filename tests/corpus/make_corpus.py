"""Regenerate the real-export corpus: tests/corpus/models/*.onnx and tests/corpus/manifest.json.

    python3 -m venv .venv-export
    .venv-export/bin/pip install torch==2.13.0 transformers onnxscript onnx onnxruntime
    .venv-export/bin/python tests/corpus/make_corpus.py [--only bert,gpt2] [--out DIR]

Only regeneration needs torch/transformers; the tests read the committed files through ``corpus.py``.

Each model is a Hugging Face ``transformers`` model built from a tiny config with random weights (fixed seed, no
download), put in eval mode and exported as users do: ``torch.onnx.export`` with dynamic batch/sequence axes, by
the TorchScript exporter (``dynamo=False``) at opsets 11, 14 and 16 and by the dynamo exporter at opset 18, with
the weights inside the .onnx file. A few are also exported after ``.half()``. An export that fails is recorded
in the manifest with the exporter's own error, never dropped silently.

Every manifest count comes from the source model itself: forward hooks on every module during one forward pass
count the modules actually called (LayerNorm, RMSNorm, GELU by kind, QuickGELU apart, Linear/Conv widths).
Each export is then run in onnxruntime at input shapes other than the traced ones and compared with torch, so a
file in the corpus is known to be dynamic where the manifest says so and to compute what the model computes.
"""

import argparse
import os
import sys
import tempfile
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import records  # noqa: E402

CORPUS_DIR = Path(__file__).resolve().parent
SEED = 0

# (exporter, requested opset) for every model; the manifest records the opset the file actually declares.
EXPORTS = [("torchscript", 11), ("torchscript", 14), ("torchscript", 16), ("dynamo", 18)]
FP16_EXPORTS = [("torchscript", 14), ("dynamo", 18)]

# Module class names -> what they compute. GELU kinds follow the function, not the name: erf GELU vs the tanh
# approximation (HF "gelu_new" writes the tanh formula out; "gelu_pytorch_tanh" calls F.gelu(approximate="tanh")).
# QuickGELU (x * sigmoid(1.702 x)) is a different function and is counted apart.
RMSNORM_CLASSES = {"T5LayerNorm", "LlamaRMSNorm", "RMSNorm"}
GELU_ERF_CLASSES = {"GELUActivation"}
GELU_TANH_CLASSES = {"NewGELUActivation", "GELUTanh", "PytorchGELUTanh", "FastGELUActivation"}
QUICK_GELU_CLASSES = {"QuickGELUActivation"}


@dataclass
class Spec:
    """One corpus model: how to build it, feed it and which of its inputs/outputs are dynamic."""

    name: str
    build: Callable  # () -> torch.nn.Module (wrapper taking positional tensors)
    inputs: Callable  # (variant: 0 = export/trace shapes, 1 = check shapes) -> Dict[str, torch.Tensor]
    output_names: List[str]
    dynamic_axes: Dict[str, Dict[int, str]]
    hf_class: str = ""
    fp16: bool = False
    input_constraints: Optional[str] = None
    residual_add_layernorm: Optional[Callable] = None  # (module) -> int, only where the model's structure fixes it
    config: dict = field(default_factory=dict)


def _torch():
    import torch

    return torch


def _ids(vocab, batch, seq, offset=0):
    torch = _torch()
    g = torch.Generator().manual_seed(SEED + offset)
    return torch.randint(1, vocab, (batch, seq), generator=g)


def _pixels(batch, channels, height, width, offset=0):
    torch = _torch()
    g = torch.Generator().manual_seed(SEED + 100 + offset)
    return torch.randn(batch, channels, height, width, generator=g)


# Shapes: variant 0 is traced/exported; variant 1 (other batch and sequence) checks that the file is dynamic.
BATCH = (2, 3)
SEQ = (7, 5)


class _Outputs:
    """Wraps a transformers model so that it takes positional tensors and returns a tuple of named tensors."""

    @staticmethod
    def make(model, input_names, output_getters):
        torch = _torch()

        class Wrapper(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, *args):
                out = self.model(**dict(zip(input_names, args)))
                return tuple(get(out) for get in output_getters)

        return Wrapper()


def _text_axes(names, outputs3d, outputs2d=()):
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes.update({n: {0: "batch", 1: "sequence"} for n in outputs3d})
    axes.update({n: {0: "batch"} for n in outputs2d})
    return axes


def _bert_like(name, cls_name, config_cls_name, **cfg):
    import transformers

    config_defaults = dict(
        vocab_size=200,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=150,
        max_position_embeddings=64,
        type_vocab_size=2,
        hidden_act="gelu",
        attn_implementation="eager",
    )
    config_defaults.update(cfg)
    attn = config_defaults.pop("attn_implementation")
    config = getattr(transformers, config_cls_name)(**config_defaults)
    config._attn_implementation = attn
    names = ["input_ids", "attention_mask", "token_type_ids"]

    def build():
        model = getattr(transformers, cls_name)(config).eval()
        return _Outputs.make(model, names, [lambda o: o.last_hidden_state, lambda o: o.pooler_output])

    def inputs(variant):
        torch = _torch()
        b, s = BATCH[variant], SEQ[variant]
        mask = torch.ones(b, s, dtype=torch.int64)
        mask[0, s - 2 :] = 0  # one padded row: the mask path is exercised, not constant-folded
        return {
            "input_ids": _ids(config.vocab_size, b, s, variant),
            "attention_mask": mask,
            "token_type_ids": torch.zeros(b, s, dtype=torch.int64),
        }

    def residual_adds(module):
        # Post-LN encoder layers: LayerNorm(dense(x) + residual) in SelfOutput and in Output, 2 per layer.
        return sum(1 for n, _ in module.named_modules() if n.endswith("output.LayerNorm"))

    return Spec(
        name=name,
        build=build,
        inputs=inputs,
        output_names=["last_hidden_state", "pooler_output"],
        dynamic_axes=_text_axes(names, ["last_hidden_state"], ["pooler_output"]),
        hf_class=cls_name,
        residual_add_layernorm=residual_adds,
        config=config_defaults,
    )


def _gpt2(with_past):
    import transformers

    cfg = dict(
        vocab_size=200 if with_past else 1001,  # the odd vocab once is enough: files stay small
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_inner=191,
        activation_function="gelu_new",
        use_cache=with_past,
    )
    config = transformers.GPT2Config(**cfg)
    config._attn_implementation = "eager"
    n_layer, n_head, head_dim = cfg["n_layer"], cfg["n_head"], cfg["n_embd"] // cfg["n_head"]
    past_names = [f"past_key_values.{i}.{kv}" for i in range(n_layer) for kv in ("key", "value")]
    present_names = [f"present.{i}.{kv}" for i in range(n_layer) for kv in ("key", "value")]
    past_len = (4, 6)

    def build():
        torch = _torch()
        model = transformers.GPT2LMHeadModel(config).eval()

        class Gpt2(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, *args):
                input_ids, attention_mask, past = args[0], args[1], args[2:]
                if not with_past:
                    return (self.model(input_ids=input_ids, attention_mask=attention_mask).logits,)
                cache = _cache_from_tensors(past, config)
                out = self.model(
                    input_ids=input_ids, attention_mask=attention_mask, past_key_values=cache, use_cache=True
                )
                return (out.logits, *_cache_to_tensors(out.past_key_values))

        return Gpt2()

    def inputs(variant):
        torch = _torch()
        b, s = BATCH[variant], SEQ[variant] if not with_past else (3, 2)[variant]
        p = past_len[variant] if with_past else 0
        feeds = {
            "input_ids": _ids(cfg["vocab_size"], b, s, variant),
            "attention_mask": torch.ones(b, p + s, dtype=torch.int64),
        }
        g = torch.Generator().manual_seed(SEED + 200 + variant)
        for n in past_names if with_past else ():
            feeds[n] = torch.randn(b, n_head, p, head_dim, generator=g)
        return feeds

    axes = {"input_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}}
    axes["attention_mask"] = {0: "batch", 1: "past_sequence+sequence" if with_past else "sequence"}
    for n in past_names if with_past else ():
        axes[n] = {0: "batch", 2: "past_sequence"}
    for n in present_names if with_past else ():
        axes[n] = {0: "batch", 2: "past_sequence+sequence"}
    return Spec(
        name="gpt2_past" if with_past else "gpt2",
        build=build,
        inputs=inputs,
        output_names=["logits"] + (present_names if with_past else []),
        dynamic_axes=axes,
        hf_class="GPT2LMHeadModel",
        input_constraints=(
            "attention_mask length = past_sequence + sequence (past_key_values.*.key/value: "
            "[batch, heads=2, past_sequence, head_dim=16])"
            if with_past
            else None
        ),
        config=cfg,
    )


def _cache_from_tensors(past, config):
    """A transformers cache holding the given per-layer (key, value) tensors."""
    import transformers

    pairs = [(past[2 * i], past[2 * i + 1]) for i in range(len(past) // 2)]
    cache = transformers.DynamicCache(config=config) if _cache_takes_config() else transformers.DynamicCache()
    for i, (k, v) in enumerate(pairs):
        cache.update(k, v, i)
    return cache


def _cache_takes_config():
    import inspect

    import transformers

    return "config" in inspect.signature(transformers.DynamicCache.__init__).parameters


def _cache_to_tensors(cache):
    if hasattr(cache, "layers"):
        return [t for layer in cache.layers for t in (layer.keys, layer.values)]
    return [t for i in range(len(cache)) for t in cache[i]]


def _vit():
    import transformers

    cfg = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=150,
        image_size=32,
        patch_size=8,
        num_channels=3,
        hidden_act="gelu",
    )
    config = transformers.ViTConfig(**cfg)
    config._attn_implementation = "eager"

    def build():
        model = transformers.ViTModel(config).eval()
        return _Outputs.make(model, ["pixel_values"], [lambda o: o.last_hidden_state, lambda o: o.pooler_output])

    return Spec(
        name="vit",
        build=build,
        inputs=lambda v: {"pixel_values": _pixels(BATCH[v], 3, 32, 32, v)},
        output_names=["last_hidden_state", "pooler_output"],
        dynamic_axes={"pixel_values": {0: "batch"}, "last_hidden_state": {0: "batch"}, "pooler_output": {0: "batch"}},
        hf_class="ViTModel",
        config=cfg,
    )


def _swin():
    import transformers

    cfg = dict(
        image_size=32,
        patch_size=4,
        num_channels=3,
        embed_dim=16,
        depths=[2, 1],
        num_heads=[1, 2],
        window_size=4,
        mlp_ratio=3.0,
        hidden_act="gelu",
    )
    config = transformers.SwinConfig(**cfg)
    config._attn_implementation = "eager"

    def build():
        model = transformers.SwinModel(config).eval()
        return _Outputs.make(model, ["pixel_values"], [lambda o: o.last_hidden_state, lambda o: o.pooler_output])

    return Spec(
        name="swin",
        build=build,
        inputs=lambda v: {"pixel_values": _pixels(BATCH[v], 3, 32, 32, v)},
        output_names=["last_hidden_state", "pooler_output"],
        dynamic_axes={"pixel_values": {0: "batch"}, "last_hidden_state": {0: "batch"}, "pooler_output": {0: "batch"}},
        hf_class="SwinModel",
        config=cfg,
    )


def _detr():
    import transformers

    backbone = dict(
        num_channels=3,
        embedding_size=8,
        hidden_sizes=[8, 8, 16, 16],
        depths=[1, 1, 1, 1],
        layer_type="basic",
        out_features=["stage4"],
    )
    cfg = dict(
        use_timm_backbone=False,
        use_pretrained_backbone=False,
        backbone=None,
        backbone_config=transformers.ResNetConfig(**backbone),
        d_model=32,
        encoder_layers=2,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=150,
        decoder_ffn_dim=150,
        num_queries=10,
        num_labels=5,
        activation_function="relu",
    )
    config = transformers.DetrConfig(**cfg)
    config._attn_implementation = "eager"
    size = ((64, 64), (96, 64))

    def build():
        model = transformers.DetrForObjectDetection(config).eval()
        return _Outputs.make(model, ["pixel_values", "pixel_mask"], [lambda o: o.logits, lambda o: o.pred_boxes])

    def inputs(variant):
        torch = _torch()
        h, w = size[variant]
        return {
            "pixel_values": _pixels(BATCH[variant], 3, h, w, variant),
            "pixel_mask": torch.ones(BATCH[variant], h, w, dtype=torch.int64),
        }

    cfg_record = dict(cfg, backbone_config=dict(backbone, model_type="resnet"))
    return Spec(
        name="detr",
        build=build,
        inputs=inputs,
        output_names=["logits", "pred_boxes"],
        dynamic_axes={
            "pixel_values": {0: "batch", 2: "height", 3: "width"},
            "pixel_mask": {0: "batch", 1: "height", 2: "width"},
            "logits": {0: "batch"},
            "pred_boxes": {0: "batch"},
        },
        hf_class="DetrForObjectDetection",
        input_constraints="pixel_mask is [batch, height, width] of pixel_values (1 = real pixel)",
        config=cfg_record,
    )


def _t5_encoder():
    import transformers

    cfg = dict(
        vocab_size=200,
        d_model=32,
        d_kv=24,
        d_ff=72,
        num_layers=2,
        num_heads=2,
        feed_forward_proj="gated-gelu",
        relative_attention_num_buckets=8,
    )
    config = transformers.T5Config(**cfg)
    config._attn_implementation = "eager"
    names = ["input_ids", "attention_mask"]

    def build():
        model = transformers.T5EncoderModel(config).eval()
        return _Outputs.make(model, names, [lambda o: o.last_hidden_state])

    def inputs(variant):
        torch = _torch()
        b, s = BATCH[variant], SEQ[variant]
        mask = torch.ones(b, s, dtype=torch.int64)
        mask[0, s - 2 :] = 0
        return {"input_ids": _ids(cfg["vocab_size"], b, s, variant), "attention_mask": mask}

    return Spec(
        name="t5_encoder",
        build=build,
        inputs=inputs,
        output_names=["last_hidden_state"],
        dynamic_axes=_text_axes(names, ["last_hidden_state"]),
        hf_class="T5EncoderModel",
        fp16=False,
        config=cfg,
    )


def _llama():
    import transformers

    cfg = dict(
        vocab_size=257,
        hidden_size=32,
        intermediate_size=86,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        tie_word_embeddings=True,
        use_cache=False,
    )
    config = transformers.LlamaConfig(**cfg)
    config._attn_implementation = "eager"
    names = ["input_ids", "attention_mask"]

    def build():
        model = transformers.LlamaForCausalLM(config).eval()
        return _Outputs.make(model, names, [lambda o: o.logits])

    def inputs(variant):
        torch = _torch()
        b, s = BATCH[variant], SEQ[variant]
        return {"input_ids": _ids(cfg["vocab_size"], b, s, variant), "attention_mask": torch.ones(b, s, dtype=torch.int64)}

    return Spec(
        name="llama",
        build=build,
        inputs=inputs,
        output_names=["logits"],
        dynamic_axes=_text_axes(names, ["logits"]),
        hf_class="LlamaForCausalLM",
        fp16=True,
        config=cfg,
    )


def _clip():
    import transformers

    text = dict(
        vocab_size=200,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=32,
        hidden_act="quick_gelu",
    )
    vision = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
        hidden_act="quick_gelu",
    )
    config = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=24)
    config._attn_implementation = "eager"
    names = ["input_ids", "pixel_values", "attention_mask"]

    def build():
        model = transformers.CLIPModel(config).eval()
        return _Outputs.make(model, names, [lambda o: o.logits_per_image, lambda o: o.text_embeds, lambda o: o.image_embeds])

    def inputs(variant):
        torch = _torch()
        b, s = BATCH[variant], SEQ[variant]
        return {
            "input_ids": _ids(text["vocab_size"], b, s, variant),
            "pixel_values": _pixels(b, 3, 32, 32, variant),
            "attention_mask": torch.ones(b, s, dtype=torch.int64),
        }

    return Spec(
        name="clip",
        build=build,
        inputs=inputs,
        output_names=["logits_per_image", "text_embeds", "image_embeds"],
        dynamic_axes={
            "input_ids": {0: "text_batch", 1: "sequence"},
            "attention_mask": {0: "text_batch", 1: "sequence"},
            "pixel_values": {0: "image_batch"},
            "logits_per_image": {0: "image_batch", 1: "text_batch"},
            "text_embeds": {0: "text_batch"},
            "image_embeds": {0: "image_batch"},
        },
        hf_class="CLIPModel",
        config={"text_config": text, "vision_config": vision, "projection_dim": 24},
    )


def _whisper_encoder():
    import transformers

    cfg = dict(
        vocab_size=200,
        num_mel_bins=80,
        d_model=32,
        encoder_layers=2,
        encoder_attention_heads=2,
        decoder_layers=1,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=16,
        max_target_positions=16,
        activation_function="gelu",
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
        begin_suppress_tokens=None,
    )
    config = transformers.WhisperConfig(**cfg)
    config._attn_implementation = "eager"
    frames = 2 * cfg["max_source_positions"]

    def build():
        model = transformers.WhisperModel(config).get_encoder().eval()
        return _Outputs.make(model, ["input_features"], [lambda o: o.last_hidden_state])

    def inputs(variant):
        torch = _torch()
        g = torch.Generator().manual_seed(SEED + 300 + variant)
        return {"input_features": torch.randn(BATCH[variant], cfg["num_mel_bins"], frames, generator=g)}

    return Spec(
        name="whisper_encoder",
        build=build,
        inputs=inputs,
        output_names=["last_hidden_state"],
        dynamic_axes={"input_features": {0: "batch"}, "last_hidden_state": {0: "batch"}},
        hf_class="WhisperEncoder",
        input_constraints=f"input_features frames must be {frames} (2 x max_source_positions)",
        config=cfg,
    )


def specs():
    bert = _bert_like("bert", "BertModel", "BertConfig")
    bert.fp16 = True
    roberta = _bert_like(
        "roberta", "RobertaModel", "RobertaConfig", intermediate_size=64, max_position_embeddings=66, type_vocab_size=1,
        pad_token_id=1,
    )
    return [
        bert,
        roberta,
        _gpt2(with_past=False),
        _gpt2(with_past=True),
        _vit(),
        _swin(),
        _detr(),
        _t5_encoder(),
        _llama(),
        _clip(),
        _whisper_encoder(),
    ]


# ---------------------------------------------------------------------------------------------------------------
# Observing the source model


def observe(module, feeds):
    """Counts of the modules called during one forward pass, and every Linear/Conv's widths."""
    torch = _torch()
    counts = {"layernorm": 0, "rmsnorm": 0, "gelu_erf": 0, "gelu_tanh": 0, "quick_gelu": 0}
    classes = {}
    linears = []
    seen_linear = set()
    names = {m: n for n, m in module.named_modules()}

    def hook(mod, _inputs, _output):
        cls = type(mod).__name__
        kind = _kind(mod, cls)
        if kind is not None:
            counts[kind] += 1
            classes.setdefault(kind, {}).setdefault(cls, 0)
            classes[kind][cls] += 1
        widths = _widths(mod, cls)
        if widths is not None and id(mod) not in seen_linear:
            seen_linear.add(id(mod))
            linears.append(dict(name=names[mod].removeprefix("model."), type=cls, **widths))

    handles = [m.register_forward_hook(hook) for m in module.modules()]
    try:
        with torch.no_grad():
            module(*feeds.values())
    finally:
        for h in handles:
            h.remove()
    return counts, classes, linears


def _kind(mod, cls):
    torch = _torch()
    if isinstance(mod, torch.nn.LayerNorm):
        return "layernorm"
    if cls in RMSNORM_CLASSES or isinstance(mod, getattr(torch.nn, "RMSNorm", ())) or cls.endswith("RMSNorm"):
        return "rmsnorm"
    if cls in QUICK_GELU_CLASSES:
        return "quick_gelu"
    if cls in GELU_TANH_CLASSES:
        return "gelu_tanh"
    if isinstance(mod, torch.nn.GELU):
        return "gelu_tanh" if mod.approximate == "tanh" else "gelu_erf"
    if cls in GELU_ERF_CLASSES:
        return "gelu_erf"
    if "gelu" in cls.lower():
        raise RuntimeError(f"unclassified GELU module {cls}: add it to the GELU_* classes of make_corpus.py")
    return None


def _widths(mod, cls):
    torch = _torch()
    if isinstance(mod, torch.nn.Linear):
        return {"in": mod.in_features, "out": mod.out_features, "bias": mod.bias is not None}
    if cls == "Conv1D":  # transformers' GPT-2 Conv1D: a Linear with a transposed [in, out] weight
        return {"in": int(mod.weight.shape[0]), "out": int(mod.nf), "bias": True}
    if isinstance(mod, (torch.nn.Conv1d, torch.nn.Conv2d)):
        return {
            "in": mod.in_channels,
            "out": mod.out_channels,
            "bias": mod.bias is not None,
            "kernel": list(mod.kernel_size),
            "stride": list(mod.stride),
            "groups": mod.groups,
        }
    return None


# ---------------------------------------------------------------------------------------------------------------
# Exporting


def export(spec, module, feeds, exporter, opset, path):
    torch = _torch()
    args = tuple(feeds.values())
    names = list(feeds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=names,
                output_names=spec.output_names,
                dynamic_axes=spec.dynamic_axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        else:
            program = torch.onnx.export(
                module,
                args,
                input_names=names,
                output_names=spec.output_names,
                dynamic_shapes=_dynamic_shapes(names, spec.dynamic_axes),
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
            program.save(str(path), external_data=False)


def _dynamic_shapes(names, dynamic_axes):
    """torch.export's form of the dynamic axes: AUTO lets it derive relations (mask = past + sequence) itself."""
    from torch.export import Dim

    # Every wrapper takes its tensors as *args: one positional parameter holding the tuple.
    return (tuple({axis: Dim.AUTO for axis in dynamic_axes.get(n, {})} or None for n in names),)


def _strip_machine_paths(model):
    """The dynamo exporter stores each node's Python stack trace with absolute file paths of the exporting
    machine: cut them to paths relative to site-packages / this repository, so that regeneration elsewhere gives
    the same bytes and no local path is committed. Nothing else of the exporter's output is changed."""
    import site

    repo = str(CORPUS_DIR.parent.parent) + os.sep
    prefixes = sorted({p + os.sep for p in site.getsitepackages() + [site.getusersitepackages()]}, key=len, reverse=True)
    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            for prop in node.metadata_props:
                for prefix in prefixes:
                    prop.value = prop.value.replace(prefix, "")
                prop.value = prop.value.replace(repo, "")
            graphs += [a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]
            graphs += [g for a in node.attribute if a.type == onnx.AttributeProto.GRAPHS for g in a.graphs]


def check_with_ort(path, module, feeds):
    """Largest |onnxruntime - torch| over all outputs, at the given (not the traced) shapes."""
    import onnxruntime as ort

    torch = _torch()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in sess.get_inputs()}
    ort_out = sess.run(None, {k: v.numpy() for k, v in feeds.items() if k in wanted})
    with torch.no_grad():
        ref = module(*feeds.values())
    return max(float(np.max(np.abs(a.astype(np.float64) - b.float().numpy()))) if a.size else 0.0 for a, b in zip(ort_out, ref))


def _to_half(feeds):
    torch = _torch()
    return {k: v.half() if v.is_floating_point() else v for k, v in feeds.items()}


def make(spec, out_dir, log):
    """Export one model every way; returns (manifest records, failure records)."""
    torch = _torch()
    files, failures = [], []
    variants = [("float32", e, o) for e, o in EXPORTS]
    if spec.fp16:
        variants += [("float16", e, o) for e, o in FP16_EXPORTS]
    try:
        torch.manual_seed(SEED)
        module = spec.build().eval()
        feeds, check_feeds = spec.inputs(0), spec.inputs(1)
        counts, classes, linears = observe(module, feeds)
    except Exception as err:  # the model itself cannot be built or run: every export of it fails
        log(f"    FAILED to build: {records.first_line(err)}")
        return [], [
            {"model": spec.name, "exporter": e, "opset_requested": o, "dtype": d, "error": "building the model: " + records.first_line(err)}
            for d, e, o in variants
        ]
    if spec.residual_add_layernorm is not None:
        counts["residual_add_layernorm"] = spec.residual_add_layernorm(module)
    odd = records.odd_widths(linears)
    for dtype, exporter, opset in variants:
        tag = {"torchscript": "ts", "dynamo": "dynamo"}[exporter]
        fname = f"{spec.name}{'_fp16' if dtype == 'float16' else ''}_{tag}{opset}.onnx"
        path = out_dir / fname
        base = {"model": spec.name, "exporter": exporter, "opset_requested": opset, "dtype": dtype}
        mod, ex_feeds, chk_feeds = module, feeds, check_feeds
        if dtype == "float16":
            torch.manual_seed(SEED)
            mod = spec.build().eval().half()
            ex_feeds, chk_feeds = _to_half(feeds), _to_half(check_feeds)
        log(f"  {fname} ...")
        try:
            with tempfile.TemporaryDirectory() as tmp:
                tmp_path = Path(tmp) / fname
                export(spec, mod, ex_feeds, exporter, opset, tmp_path)
                model = onnx.load(str(tmp_path))
                if exporter == "dynamo":
                    _strip_machine_paths(model)
                    onnx.save(model, str(tmp_path))
                onnx.checker.check_model(model, full_check=True)
                diff = check_with_ort(tmp_path, mod, chk_feeds)
                tolerance = 1e-3 if dtype == "float32" else 5e-2
                if not diff <= tolerance:
                    raise RuntimeError(
                        f"onnxruntime differs from torch by {diff:.3g} (> {tolerance}) at shapes other than the traced ones"
                    )
                os.replace(tmp_path, path)
        except Exception as err:  # an exporter's failure is a corpus fact: record it, go on
            log(f"    FAILED: {records.first_line(err)}")
            if os.environ.get("CORPUS_TRACEBACK"):
                traceback.print_exc()
            failures.append(dict(base, error=records.first_line(err)))
            continue
        files.append(
            records.file_record(
                path,
                model,
                model=spec.name,
                hf_class=spec.hf_class,
                exporter=exporter,
                opset_requested=opset,
                dtype=dtype,
                dynamic_axes={k: {str(a): n for a, n in v.items()} for k, v in spec.dynamic_axes.items()},
                input_constraints=spec.input_constraints,
                export_shapes={k: list(v.shape) for k, v in feeds.items()},
                ort_max_abs_diff=diff,
                counts=counts,
                module_classes=classes,
                linears=linears,
                odd_widths=odd,
                config=spec.config,
            )
        )
    return files, failures


def versions():
    import transformers

    torch = _torch()
    import onnxruntime

    out = {"torch": torch.__version__, "transformers": transformers.__version__, "onnx": onnx.__version__,
           "onnxruntime": onnxruntime.__version__}
    try:
        import onnxscript

        out["onnxscript"] = onnxscript.__version__
    except ImportError:
        pass
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated model names: regenerate those, keep the others' records")
    args = parser.parse_args(argv)
    records.MODELS_DIR.mkdir(parents=True, exist_ok=True)
    torch = _torch()
    torch.set_num_threads(1)
    all_specs = specs()
    names = [s.name for s in all_specs]
    only = set(args.only.split(",")) if args.only else set(names)
    if only - set(names):
        sys.exit(f"unknown model(s): {', '.join(sorted(only - set(names)))}; known: {', '.join(names)}")
    files, failures = [], []
    for spec in all_specs:
        if spec.name in only:
            print(spec.name, flush=True)
            recs, fails = make(spec, records.MODELS_DIR, lambda m: print(m, flush=True))
            files += recs
            failures += fails
    records.write_manifest(
        {"torchscript", "dynamo"}, files, failures, {"torch": versions()}, keep_models=set(names) - only
    )


if __name__ == "__main__":
    main()

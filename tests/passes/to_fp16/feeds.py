"""Inputs for a model the tests and the benchmark did not write: valid indices, masks that mask something."""

import json
from pathlib import Path

import numpy as np
import onnx


def _index_bound(model, name):
    """Exclusive upper bound for integer input ``name``: the row count of a table it indexes, else 2."""
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Gather" and len(node.input) > 1 and node.input[1] == name and node.input[0] in inits:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
            return int(inits[node.input[0]].dims[axis])
    return 2


def export_shapes(path):
    """Input shapes the corpus manifest (tests/corpus/manifest.json) recorded for ``path``, if any: they satisfy
    constraints no generic rule knows (GPT-2 past + sequence = mask length)."""
    manifest = Path(path).resolve().parent.parent / "manifest.json"
    if not manifest.is_file():
        return {}
    for record in json.loads(manifest.read_text()).get("files", []):
        if record.get("file") == Path(path).name:
            return record.get("export_shapes") or {}
    return {}


def make_feeds(model, seed, batch=2, seq=16, shapes=None):
    """One feed dict: ``shapes`` where given, else ``batch`` for the first dynamic dim of an input and ``seq`` for
    the others (one value per dim name); floats standard normal, integer inputs valid indices of the table
    they gather from (else 0/1), masks with the second half of the last sequence masked."""
    rng = np.random.default_rng(seed)
    inits = {i.name for i in model.graph.initializer}
    feeds, params = {}, {}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        tt = inp.type.tensor_type
        shape = list((shapes or {}).get(inp.name, []))
        for i, dim in enumerate(tt.shape.dim if not shape else []):
            # One value per symbolic dim name, so inputs that share a dim agree.
            key = dim.dim_param or f"{inp.name}:{i}"
            shape.append(dim.dim_value if dim.dim_value > 0 else params.setdefault(key, batch if i == 0 else seq))
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if np.issubdtype(dtype, np.floating):
            feeds[inp.name] = rng.standard_normal(shape).astype(dtype)
        elif "mask" in inp.name.lower():
            mask = np.ones(shape, dtype)
            if mask.ndim >= 2:
                mask[-1, ..., shape[-1] // 2 :] = 0  # one padded sequence: the mask path is exercised
            feeds[inp.name] = mask
        else:
            feeds[inp.name] = rng.integers(0, _index_bound(model, inp.name), size=shape).astype(dtype)
    return feeds

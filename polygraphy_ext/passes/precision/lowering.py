"""The to-fp16 pass: measure, decide, search, write. Pure: an onnx.ModelProto (weights loaded) and input
batches in, a new model and a PrecisionReport out; knows no CLI."""

import time
from typing import Dict, Iterable, List, Optional, Sequence, Set

import numpy as np
import onnx

from polygraphy_ext.passes.precision.convert import convert, smooth_islands
from polygraphy_ext.passes.precision.dtypes import DEFAULT_DTYPE, DEFAULT_RANGE_MARGIN, FLOAT, low_type
from polygraphy_ext.passes.precision.emulate import Emulator
from polygraphy_ext.passes.precision.measure import DEFAULT_CHUNK, MeasureError, measure, ort_session
from polygraphy_ext.passes.precision.model_index import ModelIndex, opset_of
from polygraphy_ext.passes.precision.report import GEMM_OPS, Fp32Node, Island, PrecisionReport
from polygraphy_ext.passes.precision.search import ToleranceError, search
from polygraphy_ext.passes.precision.storage_rounding import storage_rounded
from polygraphy_ext.passes.precision.semantics import DATA_MOVEMENT_OPS, merge, semantic_fp32_nodes, user_fp32_nodes
from polygraphy_ext.passes.precision.tolerance import judge


class PrecisionError(Exception):
    """Bad input or an unmeetable request; the message is one line for the user."""


def to_low_precision(
    model: onnx.ModelProto,
    batches: Optional[Sequence[Dict[str, np.ndarray]]],
    *,
    dtype: str = DEFAULT_DTYPE,
    atol: Optional[float] = None,
    rtol: Optional[float] = None,
    keep_fp32: Iterable[str] = (),
    keep_io_types: bool = True,
    range_margin: float = DEFAULT_RANGE_MARGIN,
    default_data: bool = False,
    chunk: int = DEFAULT_CHUNK,
):
    """(converted model, PrecisionReport). ``batches``: feed dicts for the model's inputs (at least one)."""
    started = time.perf_counter()
    try:
        low = low_type(dtype)
    except ValueError as err:
        raise PrecisionError(str(err)) from None
    atol = low.default_atol if atol is None else float(atol)
    rtol = low.default_rtol if rtol is None else float(rtol)
    if atol < 0 or rtol < 0 or range_margin < 1:
        raise PrecisionError("atol and rtol must be >= 0 and the range margin >= 1")
    _check_model(model, low)
    batches = list(batches or [])
    report = PrecisionReport(dtype, atol, rtol, range_margin, keep_io_types, default_data, len(batches))
    model = _named_nodes(model)

    try:
        measured, reference_session = measure(model, batches, chunk)
    except MeasureError as err:
        raise PrecisionError(str(err)) from None
    if not measured.float_tensors:
        raise PrecisionError("the model computes no FP32 tensor (integer-only): nothing to convert")
    report.seconds["measure"] = time.perf_counter() - started

    index = ModelIndex(model, measured.float_tensors, low)
    try:
        forced = merge(user_fp32_nodes(index, keep_fp32), semantic_fp32_nodes(index))
    except ValueError as err:
        raise PrecisionError(str(err)) from None
    convertible = [
        info.name
        for info in index.nodes
        if (info.low_inputs or info.low_outputs) and info.op != "Constant" and info.name not in forced
    ]
    report.num_nodes = sum(
        1 for info in index.nodes if info.op != "Constant" and (info.float_inputs() or info.float_outputs())
    )
    overflow = _overflowing(index, measured.max_abs, convertible, low, range_margin)
    underflow = _underflowing_constants(index, [n for n in convertible if n not in overflow], low)
    low_nodes = {name for name in convertible if name not in overflow and name not in underflow}

    def write(chosen, smooth=True):
        joined = set()
        if smooth:
            movable = {name for name in chosen if index.by_name[name].op in DATA_MOVEMENT_OPS}
            joined = smooth_islands(index, chosen, movable, keep_io_types)
        converted = convert(model, index, chosen - joined, keep_io_types)
        return chosen - joined, joined, converted, _validate(converted, batches, measured.reference, atol, rtol)

    # The written model is judged first: most models need no search, and then no emulation model is built.
    phase = time.perf_counter()
    low_nodes, joined, converted, verdict = write(low_nodes)
    blamed, trials = {}, 1
    if not verdict.ok:
        emulator = Emulator(model, index, sorted(low_nodes), keep_io_types, chunk)
        try:
            result = search(index, emulator, reference_session, batches, measured.reference, low_nodes, atol, rtol)
        except ToleranceError as err:
            raise PrecisionError(str(err)) from None
        blamed, trials = result.blamed, trials + emulator.runs
        low_nodes, joined, converted, verdict = write(result.low_nodes)
        trials += 1
        if not verdict.ok and joined:
            # Fewer roundings can still land on the wrong side of a tolerance met by a hair: write exactly
            # the set the emulation accepted.
            low_nodes, joined, converted, verdict = write(result.low_nodes, smooth=False)
            trials += 1
        if not verdict.ok:
            raise PrecisionError(
                "internal error: the written model misses the tolerance that its emulation met: "
                f"{verdict.worst.describe()}"
            )
    report.seconds["search_and_write"] = time.perf_counter() - phase
    report.final_errors = [
        {"output": e.output, "max_abs_err": e.max_abs_err, "max_rel_err": e.max_rel_err, "nonfinite": e.nonfinite}
        for e in verdict.errors
    ]
    report.trials = trials
    _fill_decisions(report, index, measured, low_nodes, forced, overflow, underflow, blamed, joined)
    report.num_casts = sum(1 for n in converted.graph.node if n.op_type == "Cast") - sum(
        1 for n in model.graph.node if n.op_type == "Cast"
    )
    report.hints = _hints(index, report, default_data)
    report.seconds["total"] = time.perf_counter() - started
    return converted, report


def _check_model(model: onnx.ModelProto, low):
    graph = model.graph
    types = [init.data_type for init in graph.initializer]
    types += [v.type.tensor_type.elem_type for v in list(graph.input) + list(graph.output) + list(graph.value_info)]
    lows = {onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
    if FLOAT not in types and any(t in lows for t in types):
        raise PrecisionError("the model is already in fp16/bf16 (no FP32 input, output or weight): nothing to convert")
    if opset_of(model) < low.min_opset:
        raise PrecisionError(f"{low.name} needs opset >= {low.min_opset} (Cast to {low.name}); the model has {opset_of(model)}")


def _named_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every main-graph node gets a unique name (reports, --keep-fp32 and TensorRT layer names refer to it)."""
    names = [node.name for node in model.graph.node]
    if all(names) and len(set(names)) == len(names):
        return model
    named = onnx.ModelProto()
    named.CopyFrom(model)
    seen: Set[str] = set()
    for i, node in enumerate(named.graph.node):
        if not node.name or node.name in seen:
            base = node.name or f"{node.op_type}_{i}"
            name, k = base, 1
            while name in seen or name in names:
                name, k = f"{base}_{k}", k + 1
            node.name = name
        seen.add(node.name)
    return named


def _overflowing(index: ModelIndex, max_abs: Dict[str, float], names: List[str], low, margin) -> Dict[str, str]:
    limit = low.max_finite / margin
    found = {}
    for name in names:
        info = index.by_name[name]
        for tensor in info.float_inputs() + info.float_outputs():
            peak = max_abs.get(tensor, 0.0)
            if peak > limit:
                found[name] = f"'{tensor}' reaches |x| = {peak:.4g} > {low.max_finite:g}/{margin:g}"
                break
    return found


# Constants larger than this are weights: a tiny weight flushed to 0 changes little, an epsilon flushed to 0
# turns x / sqrt(var + eps) into a division by zero on constant rows.
_SMALL_CONSTANT = 16


def _underflowing_constants(index: ModelIndex, names: List[str], low) -> Dict[str, str]:
    """Nodes reading a small constant with a nonzero value that the low type rounds to 0 (BERT's eps of 1e-12)."""
    found = {}
    for name in names:
        info = index.by_name[name]
        for tensor in info.float_inputs():
            values = _small_constant(index, tensor)
            if values is None:
                continue
            tiny = values[(values != 0) & (np.abs(values) < low.min_positive / 2)]
            if tiny.size:
                found[name] = f"constant '{tensor}' = {float(tiny.flat[0]):.3g} is 0 in {low.name}"
                break
    return found


def _small_constant(index: ModelIndex, name: str):
    if name in index.initializers:
        tensor = index.initializers[name]
    elif name in index.producer and index.nodes[index.producer[name][0]].op == "Constant":
        attrs = {a.name: a for a in index.nodes[index.producer[name][0]].node.attribute}
        if "value" in attrs:
            tensor = attrs["value"].t
        elif "value_float" in attrs:
            return np.array([attrs["value_float"].f], np.float32)
        elif "value_floats" in attrs:
            return np.array(list(attrs["value_floats"].floats), np.float32)
        else:
            return None
    else:
        return None
    if int(np.prod(tensor.dims)) > _SMALL_CONSTANT or tensor.data_location == onnx.TensorProto.EXTERNAL:
        return None
    return onnx.numpy_helper.to_array(tensor).astype(np.float64)


def _validate(converted, batches, references, atol, rtol):
    """Run the written model with every 16-bit tensor rounded (storage_rounding.py) and judge it."""
    session = ort_session(storage_rounded(converted))
    names = [o.name for o in converted.graph.output]
    outputs = [dict(zip(names, session.run(names, feeds))) for feeds in batches]
    return judge(references, outputs, atol, rtol)


def _node_flops(index: ModelIndex, info, shapes) -> int:
    if info.op not in GEMM_OPS:
        return 0

    def shape(name):
        if name in index.initializers:
            return tuple(index.initializers[name].dims)
        return shapes.get(name)

    out = shapes.get(info.node.output[0]) if info.node.output else None
    if out is None:
        return 0
    out_size = int(np.prod(out)) if out else 1
    if info.op in ("MatMul", "MatMulInteger"):
        a = shape(info.node.input[0])
        return 2 * out_size * int(a[-1]) if a else 0
    if info.op == "Gemm":
        a = shape(info.node.input[0])
        trans_a = any(attr.name == "transA" and attr.i for attr in info.node.attribute)
        return 2 * out_size * int(a[0] if trans_a else a[-1]) if a else 0
    if info.op in ("Conv", "ConvTranspose"):
        w = shape(info.node.input[1])
        if not w:
            return 0
        if info.op == "Conv":
            return 2 * out_size * int(np.prod(w[1:]))
        x = shape(info.node.input[0])
        return 2 * int(np.prod(x)) * int(np.prod(w[1:])) if x else 0
    return 0


def _fill_decisions(report, index, measured, low_nodes, forced, overflow, underflow, blamed, joined):
    flops = {info.name: _node_flops(index, info, measured.shapes) for info in index.nodes}
    report.total_gemm_flops = sum(flops.values())
    report.low_nodes = [info.name for info in index.nodes if info.name in low_nodes]
    for info in index.nodes:
        name = info.name
        if name in low_nodes or info.op == "Constant" or not (info.float_inputs() or info.float_outputs()):
            continue
        if name in overflow:
            kind, detail = "overflow", overflow[name]
        elif name in underflow:
            kind, detail = "underflow", underflow[name]
        elif name in blamed:
            kind = "error"
            if blamed[name] > 0:
                detail = f"adds {blamed[name]:.3g} of its outputs' scale in {report.dtype}"
            else:
                detail = f"writes the input of a node that amplifies {report.dtype} rounding"
        elif name in joined:
            kind, detail = "island", "data movement between FP32 nodes"
        elif name in forced:
            kind = "request" if forced[name].startswith("kept FP32 by request") else "semantics"
            detail = forced[name]
        else:
            kind, detail = "semantics", "no convertible input or output"
        report.fp32_nodes.append(Fp32Node(name, info.op, kind, detail, flops[name]))
    report.islands = _islands(index, report.fp32_nodes)


def _islands(index, fp32_nodes) -> List[Island]:
    members = {n.name: n for n in fp32_nodes}
    parent = {name: name for name in members}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for name in members:
        info = index.by_name[name]
        for tensor in info.float_outputs():
            for node_index, _ in index.consumers.get(tensor, ()):
                other = index.nodes[node_index].name
                if other in members:
                    parent[find(other)] = find(name)
    groups: Dict[str, List[str]] = {}
    for info in index.nodes:
        if info.name in members:
            groups.setdefault(find(info.name), []).append(info.name)
    islands = []
    for nodes in groups.values():
        kinds: Dict[str, int] = {}
        for name in nodes:
            kinds[members[name].reason] = kinds.get(members[name].reason, 0) + 1
        islands.append(Island(nodes, kinds, sum(members[n].flops for n in nodes)))
    return islands


def _hints(index, report, default_data) -> List[str]:
    hints = []
    if default_data:
        hints.append(
            "ranges were measured on generated inputs; real data gives real ranges (--data-loader-script)"
        )
    ops = {info.op for info in index.nodes}
    fp32_ops = {n.op for n in report.fp32_nodes if n.reason in ("overflow", "error")}
    if "LayerNormalization" not in ops and "ReduceMean" in ops and fp32_ops & {"ReduceMean", "Pow", "Mul", "Sqrt", "Div", "Sub"}:
        hints.append(
            "decomposed LayerNorm-like chains were kept FP32; run `polygraphy surgeon fuse-ln` first: a fused "
            f"LayerNormalization runs in {report.dtype} with FP32 statistics (stash_type=1)"
        )
    return hints

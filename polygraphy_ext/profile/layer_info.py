"""Load a trtexec ``--exportLayerInfo`` file (engine inspector JSON) and join it to a profile.

Both verbosities are accepted: ``layer_names_only`` writes ``{"Layers": ["name", ...], ...}``, ``detailed``
writes objects with ``Name``, ``LayerType``, ``Inputs``/``Outputs``, ``TacticName``, ``Metadata`` and more. A
bare list of either is accepted too. Both schemas are accepted, detected from the file:

- TensorRT <= 10: the engine's I/O under ``"Bindings"`` (a list of names); each layer tensor has one
  ``"Format/Datatype"`` string ("Row major linear FP16 format").
- TensorRT 11: the engine's I/O under ``"I/O Tensors"`` (objects with ``IOMode``); each tensor has ``"Format"``
  and ``"Datatype"`` apart (``"DataType"`` in some writers).

A file that mixes the two, or whose tensors carry neither, is refused in one line rather than half-read.
"""

import re
from typing import List, Optional

from polygraphy_ext.profile.errors import ProfileError
from polygraphy_ext.profile.model import LayerInfo, LayerInfoFile, LayerInfoJoin, Profile, TensorDesc
from polygraphy_ext.profile.parse import DEFAULT_MAX_BYTES, describe_json_value, read_text_file
from polygraphy_ext.profile.trtexec_json import read_trtexec_json

# Ordered: the first needle found in a "Format/Datatype" string names the precision.
_PRECISIONS = [
    ("fp8", "FP8"),
    ("int8", "INT8"),
    ("int4", "INT4"),
    ("fp4", "FP4"),
    ("bf16", "BF16"),
    ("bfloat16", "BF16"),
    ("float16", "FP16"),  # before "float": TensorRT 11 writers spell the type out
    ("half", "FP16"),
    ("fp16", "FP16"),
    ("int32", "INT32"),
    ("int64", "INT64"),
    ("bool", "BOOL"),
    ("float", "FP32"),
    ("fp32", "FP32"),
]
_DLA_LOCATION = re.compile(r"dla", re.IGNORECASE)


def precision_of(format_text) -> Optional[str]:
    if not isinstance(format_text, str):
        return None
    lower = format_text.lower()
    for needle, precision in _PRECISIONS:
        if needle in lower:
            return precision
    return None


def _tensors(entry: dict, key: str) -> list:
    value = entry.get(key)
    return [tensor for tensor in value if isinstance(tensor, dict)] if isinstance(value, list) else []


def _hashable(value):
    # Signatures are dictionary keys in --diff; a malformed file may nest lists or objects anywhere.
    if isinstance(value, list):
        return tuple(map(_hashable, value))
    if isinstance(value, dict):
        return tuple(sorted((key, _hashable(item)) for key, item in value.items()))
    return value


SCHEMA_TRT10 = "tensorrt<=10"
SCHEMA_TRT11 = "tensorrt11"
SCHEMA_NAMES_ONLY = "names-only"
_COMBINED_KEY = "Format/Datatype"
_SPLIT_TYPE_KEYS = ("Datatype", "DataType")


def _tensor_schema(tensor: dict) -> Optional[str]:
    if _COMBINED_KEY in tensor:
        return SCHEMA_TRT10
    if any(key in tensor for key in _SPLIT_TYPE_KEYS) or "Format" in tensor:
        return SCHEMA_TRT11
    return None


def _type_text(tensor: dict) -> str:
    """The tensor's type and layout as one string, whichever schema wrote it (what signatures compare)."""
    combined = tensor.get(_COMBINED_KEY)
    if isinstance(combined, str):
        return combined
    parts = [tensor.get(key) for key in ("Format",) + _SPLIT_TYPE_KEYS]
    return " ".join(part for part in parts if isinstance(part, str))


def _dims(value) -> tuple:
    if not isinstance(value, list):
        return ()
    return tuple(d if isinstance(d, int) and not isinstance(d, bool) else None for d in value)


def _tensor_desc(tensor: dict) -> TensorDesc:
    name = tensor.get("Name")
    text = _type_text(tensor)
    split_type = next((tensor[k] for k in _SPLIT_TYPE_KEYS if isinstance(tensor.get(k), str)), None)
    fmt = tensor.get("Format") if isinstance(tensor.get("Format"), str) else text
    return TensorDesc(
        name=name if isinstance(name, str) else "",
        dims=_dims(tensor.get("Dimensions")),
        precision=precision_of(split_type if split_type is not None else text),
        format=fmt,
    )


def _tensor_signature(tensor: dict) -> tuple:
    return (_hashable(tensor.get("Dimensions")), _type_text(tensor))


def _int_field(entry: dict, key: str) -> Optional[int]:
    value = entry.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _detailed_layer(entry: dict, index: int, source: str) -> LayerInfo:
    name = entry.get("Name")
    if not isinstance(name, str):
        raise ProfileError(f'{source}: layer {index + 1} has no "Name" string')
    inputs, outputs = _tensors(entry, "Inputs"), _tensors(entry, "Outputs")
    layer_type = entry.get("LayerType") if isinstance(entry.get("LayerType"), str) else None
    input_descs, output_descs = tuple(map(_tensor_desc, inputs)), tuple(map(_tensor_desc, outputs))
    precision = next((t.precision for t in output_descs + input_descs if t.precision), None)
    stream = entry.get("StreamId")
    on_dla = (layer_type or "").upper() == "DLA" or any(
        _DLA_LOCATION.search(str(tensor.get("Location", ""))) for tensor in inputs + outputs
    )
    metadata = entry.get("Metadata")
    return LayerInfo(
        name=name,
        index=index,
        layer_type=layer_type,
        tactic=entry.get("TacticName") if isinstance(entry.get("TacticName"), str) else None,
        precision=precision,
        signature=(layer_type, tuple(map(_tensor_signature, inputs)), tuple(map(_tensor_signature, outputs))),
        metadata=metadata if isinstance(metadata, str) else None,
        stream_id=stream if isinstance(stream, int) and not isinstance(stream, bool) else None,
        on_dla=on_dla,
        inputs=input_descs,
        outputs=output_descs,
        output_maps=_int_field(entry, "OutMaps"),
        groups=_int_field(entry, "Groups"),
    )


def _file_schema(document, layers: list, source: str) -> str:
    """Which schema wrote the file: from its I/O section and from how its layer tensors spell types."""
    seen = set()
    if isinstance(document, dict):
        if "Bindings" in document:
            seen.add(SCHEMA_TRT10)
        if "I/O Tensors" in document:
            seen.add(SCHEMA_TRT11)
    untyped = 0
    for entry in layers:
        if not isinstance(entry, dict):
            continue
        for tensor in _tensors(entry, "Inputs") + _tensors(entry, "Outputs"):
            schema = _tensor_schema(tensor)
            if schema:
                seen.add(schema)
            else:
                untyped += 1
    if len(seen) > 1:
        raise ProfileError(
            f"{source}: mixes the TensorRT <= 10 layer-info schema (Bindings, \"Format/Datatype\") with the "
            f"TensorRT 11 one (\"I/O Tensors\", \"Format\" + \"Datatype\"); is it two files joined?"
        )
    if not seen and untyped:
        raise ProfileError(
            f"{source}: unknown layer-info schema: layer tensors carry neither \"Format/Datatype\" (TensorRT <= 10) "
            f"nor \"Format\"/\"Datatype\" (TensorRT 11)"
        )
    return seen.pop() if seen else SCHEMA_NAMES_ONLY


def load_layer_info(path, max_bytes: int = DEFAULT_MAX_BYTES) -> LayerInfoFile:
    source = str(path)
    documents, _ = read_trtexec_json(read_text_file(path, max_bytes, "layer-info file"), source)
    if len(documents) != 1:
        raise ProfileError(f"{source}: expected one JSON document of layer information, found {len(documents)}")
    document = documents[0]
    layers = document.get("Layers") if isinstance(document, dict) else document
    if not isinstance(layers, list):
        raise ProfileError(
            f'{source}: expected trtexec --exportLayerInfo output (an object with a "Layers" list), '
            f"found {'an object without it' if isinstance(document, dict) else describe_json_value(document)}"
        )
    if not layers:
        raise ProfileError(f"{source}: the layer-info file lists no layers")
    entries: List[LayerInfo] = []
    detailed = isinstance(layers[0], dict)
    for index, entry in enumerate(layers):
        if isinstance(entry, str) and not detailed:
            entries.append(LayerInfo(name=entry, index=index))
        elif isinstance(entry, dict) and detailed:
            entries.append(_detailed_layer(entry, index, source))
        else:
            raise ProfileError(
                f"{source}: layer {index + 1} is neither a name (layer_names_only) nor an object (detailed) "
                f"like the first layer"
            )
    schema = _file_schema(document, layers, source) if detailed else _file_schema(document, [], source)
    return LayerInfoFile(
        layers=entries, detailed=detailed, source=source, schema=schema, io_names=_io_names(document)
    )


def _io_names(document) -> tuple:
    if not isinstance(document, dict):
        return ()
    entries = document.get("Bindings", document.get("I/O Tensors"))
    if not isinstance(entries, list):
        return ()
    names = (entry.get("Name") if isinstance(entry, dict) else entry for entry in entries)
    return tuple(name for name in names if isinstance(name, str))


def join_layer_info(profile: Profile, info: LayerInfoFile) -> LayerInfoJoin:
    """Pair profile records with layer-info entries: by exact name first, then by position inside the gaps
    between name-matched anchors (a gap of the same length on both sides pairs up one to one).

    Positions alone are never trusted: without at least one name match the files may be of different engines.
    """
    by_name = {}
    for entry in info.layers:
        by_name.setdefault(entry.name, []).append(entry)
    for candidates in by_name.values():
        candidates.reverse()  # pop() from the end then yields duplicates in file order
    pairs = {}
    used = set()
    for layer in profile.layers:
        candidates = by_name.get(layer.name)
        if candidates:
            entry = candidates.pop()
            pairs[layer.index] = entry
            used.add(entry.index)
    if not pairs:
        raise ProfileError(
            f"{info.source}: matches none of the {len(profile.layers)} layers of {profile.source} "
            f"(is it the layer info of the same engine?)"
        )
    name_matches = len(pairs)

    anchors = [(-1, -1)] + sorted((p, e.index) for p, e in pairs.items()) + [(len(profile.layers), len(info.layers))]
    for (p0, i0), (p1, i1) in zip(anchors, anchors[1:]):
        gap = p1 - p0 - 1
        if gap > 0 and gap == i1 - i0 - 1:
            for offset in range(1, gap + 1):
                if i0 + offset not in used:
                    pairs[p0 + offset] = info.layers[i0 + offset]
                    used.add(i0 + offset)

    return LayerInfoJoin(
        by_profile_index=pairs,
        matched_by={"name": name_matches, "position": len(pairs) - name_matches},
        unmatched_profile=[layer.name for layer in profile.layers if layer.index not in pairs],
        unmatched_info=[entry.name for entry in info.layers if entry.index not in used],
        profile_layers=len(profile.layers),
    )

"""Names, versions, namespace and fields of the plugins built from trt_plugins/.

The definitions live in ``specs.json`` next to this module; the C++ build generates its header from the
same file, so the ONNX nodes that ``fuse-ln --target plugin`` writes and the creators in the library can
never disagree.
"""

import functools
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Dict, List, Tuple


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str  # "float32" | "int32" | "char"
    default: object


@dataclass(frozen=True)
class PluginSpec:
    name: str
    version: str
    namespace: str
    onnx_domain: str
    summary: str
    inputs: Tuple[str, ...]  # a trailing "?" marks an optional input
    outputs: Tuple[str, ...]
    fields: Dict[str, FieldSpec] = field(default_factory=dict)

    @property
    def required_inputs(self) -> List[str]:
        return [name for name in self.inputs if not name.endswith("?")]

    def onnx_attrs(self, **values) -> Dict[str, object]:
        """Attributes for an ONNX node that TensorRT's parser maps to this plugin's creator.

        Unknown field names are a programming error and raise; omitted fields take their defaults.
        """
        unknown = set(values) - set(self.fields)
        if unknown:
            raise KeyError(f"{self.name} has no field(s) {sorted(unknown)}; fields are {sorted(self.fields)}")
        attrs = {"plugin_version": self.version, "plugin_namespace": self.namespace}
        for name, spec in self.fields.items():
            value = values.get(name, spec.default)
            if spec.type == "float32":
                value = float(value)
            elif spec.type == "int32":
                value = int(value)
            else:
                value = str(value)
            attrs[name] = value
        return attrs


@dataclass(frozen=True)
class PluginLibrarySpec:
    namespace: str
    onnx_domain: str
    library_name: str
    library_file: str
    plugins: Dict[str, PluginSpec]

    def claims(self, domain: str, namespace: str = "") -> bool:
        """Whether a node in ONNX ``domain`` / with ``plugin_namespace`` ``namespace`` is addressed to this library
        (TensorRT's parser keys creators by namespace; our fusions also put the nodes in our ONNX domain)."""
        return domain == self.onnx_domain or namespace == self.namespace

    def owns(self, op_type: str, domain: str, namespace: str = "") -> bool:
        """Whether a node is one of this library's plugins: the one test of "is this plugin node ours?"."""
        return op_type in self.plugins and self.claims(domain, namespace)


@functools.lru_cache(maxsize=None)
def library_spec() -> PluginLibrarySpec:
    raw = json.loads(resources.files(__package__).joinpath("specs.json").read_text(encoding="utf-8"))
    plugins = {}
    for name, entry in raw["plugins"].items():
        plugins[name] = PluginSpec(
            name=name,
            version=entry["version"],
            namespace=raw["namespace"],
            onnx_domain=raw["onnx_domain"],
            summary=entry["summary"],
            inputs=tuple(entry["inputs"]),
            outputs=tuple(entry["outputs"]),
            fields={
                fname: FieldSpec(fname, fentry["type"], fentry["default"]) for fname, fentry in entry["fields"].items()
            },
        )
    return PluginLibrarySpec(
        namespace=raw["namespace"],
        onnx_domain=raw["onnx_domain"],
        library_name=raw["library_name"],
        library_file=raw["library_file"],
        plugins=plugins,
    )


def plugin_spec(name: str) -> PluginSpec:
    return library_spec().plugins[name]

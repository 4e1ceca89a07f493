"""Plain data records shared by the parsing, ranking, grouping, diff and rendering modules."""

from dataclasses import dataclass, field
from typing import List, Optional, Tuple


@dataclass(slots=True)
class LayerTiming:
    """One record of a trtexec ``--exportProfile`` file."""

    name: str
    time_ms: float  # total over all profiled iterations ("timeMs")
    average_ms: float  # per iteration ("averageMs", or derived from timeMs / count)
    median_ms: Optional[float]  # TensorRT 8.4+ only
    percentage: Optional[float]  # as trtexec wrote it; we recompute shares ourselves
    index: int  # position among the layer records of the run, 0-based


@dataclass
class Profile:
    """One profiling run: the layer records in file order plus what we learned while reading them."""

    layers: List[LayerTiming]
    count: Optional[int]  # iterations, from the leading {"count": N} element when present
    source: str
    run_index: int = 1  # 1-based index of this run among the arrays in the file
    run_total: int = 1
    repaired_names: int = 0  # records whose unescaped name had to be repaired
    has_median: bool = False


@dataclass(frozen=True)
class TensorDesc:
    """One input or output tensor of a detailed layer-info entry, in either schema.

    TensorRT <= 10 writes one ``"Format/Datatype"`` string ("Row major linear FP16 format", "Channel major FP16
    format where channel % 8 == 0"); TensorRT 11 splits it into ``"Format"`` and ``"Datatype"`` (also spelled
    ``"DataType"``). ``precision`` is normalized (FP32, FP16, BF16, INT8, ...); ``format`` is the layout part.
    """

    name: str
    dims: Tuple = ()
    precision: Optional[str] = None
    format: str = ""


@dataclass
class LayerInfo:
    """One layer of a trtexec ``--exportLayerInfo`` file (engine inspector JSON)."""

    name: str
    index: int
    layer_type: Optional[str] = None
    tactic: Optional[str] = None
    precision: Optional[str] = None
    signature: Optional[Tuple] = None  # (type, inputs, outputs) with dims and formats; only in detailed files
    metadata: Optional[str] = None
    stream_id: Optional[int] = None
    on_dla: bool = False
    inputs: Tuple[TensorDesc, ...] = ()
    outputs: Tuple[TensorDesc, ...] = ()
    # Convolution parameters when the file has them (detailed verbosity): output maps and groups.
    output_maps: Optional[int] = None
    groups: Optional[int] = None


@dataclass
class LayerInfoFile:
    layers: List[LayerInfo]
    detailed: bool
    source: str
    # "tensorrt<=10" (Bindings, "Format/Datatype"), "tensorrt11" ("I/O Tensors", "Format" + "Datatype"), or
    # "names-only" when the file carries no tensor descriptions to tell them apart.
    schema: str = "names-only"
    io_names: Tuple[str, ...] = ()  # the engine's I/O tensors ("Bindings" / "I/O Tensors"), when listed


@dataclass
class LayerInfoJoin:
    """Which layer-info entry belongs to which profile record, and how each pairing was found."""

    by_profile_index: dict  # profile record index -> LayerInfo
    matched_by: dict  # "name" / "position" -> count
    unmatched_profile: List[str] = field(default_factory=list)
    unmatched_info: List[str] = field(default_factory=list)
    profile_layers: int = 0

    @property
    def coverage(self) -> float:
        return len(self.by_profile_index) / self.profile_layers if self.profile_layers else 0.0

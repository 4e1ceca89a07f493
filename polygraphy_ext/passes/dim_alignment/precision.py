"""Alignment multiples per precision; import-light, so the CLI can build its parser without the pass."""

from typing import Dict, Optional

# Tensor Core operand multiples. fp32 GEMMs run as TF32 in TensorRT unless TF32 is disabled, hence 4.
PRECISION_MULTIPLES: Dict[str, int] = {"fp32": 4, "tf32": 4, "fp16": 8, "bf16": 8, "int8": 16, "fp8": 16}
DEFAULT_PRECISION = "fp16"
DEFAULT_MAX_OVERHEAD_PCT = 5.0


def multiple_for(precision: Optional[str] = None, multiple: Optional[int] = None) -> int:
    """The alignment multiple: ``multiple`` when given, else the one for ``precision`` (default fp16 -> 8)."""
    if multiple is not None:
        if precision is not None:
            raise ValueError("give either a precision or a multiple, not both")
        if isinstance(multiple, bool) or int(multiple) != multiple or int(multiple) < 1:
            raise ValueError(f"the multiple must be a positive integer, got {multiple}")
        return int(multiple)
    precision = precision or DEFAULT_PRECISION
    if precision not in PRECISION_MULTIPLES:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISION_MULTIPLES)}")
    return PRECISION_MULTIPLES[precision]

"""Fresh tensor and node names for what a pass adds to a graph."""

from typing import Iterable


class UniqueNames:
    """``names(base)`` returns ``base``, or ``base_1``, ``base_2``, ... : the first not yet taken, then takes it."""

    def __init__(self, taken: Iterable[str]):
        self._taken = set(taken)

    def __call__(self, base: str) -> str:
        name, i = base, 1
        while name in self._taken:
            name, i = f"{base}_{i}", i + 1
        self._taken.add(name)
        return name

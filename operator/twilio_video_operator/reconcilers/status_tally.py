"""How many known objects are in each status, kept up to date in O(1) per change and exported to a gauge."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

OTHER = "none"


class StatusTally(Generic[K]):
    """The status of every known object, counted by label.

    ``labels`` are the values the gauge knows; any other status (or none) counts as ``"none"``, which must
    be one of them. ``export(label, count)`` is called for every label at once and then for each label
    whose count changed.
    """

    def __init__(self, labels: tuple[str, ...], export: Callable[[str, int], None]) -> None:
        if OTHER not in labels:
            raise ValueError(f"labels must include {OTHER!r}")
        self._labels = frozenset(labels)
        self._export = export
        self._status: dict[K, str] = {}
        self._counts: Counter[str] = Counter()
        for label in labels:
            export(label, 0)

    def set(self, key: K, status: str | None) -> None:
        label = status if status in self._labels else OTHER
        old = self._status.get(key)
        if old == label:
            return
        self._status[key] = label
        self._add(label, 1)
        if old is not None:
            self._add(old, -1)

    def discard(self, key: K) -> None:
        old = self._status.pop(key, None)
        if old is not None:
            self._add(old, -1)

    def get(self, key: K) -> str | None:
        return self._status.get(key)

    def count(self, label: str) -> int:
        return self._counts[label]

    def __len__(self) -> int:
        return len(self._status)

    def _add(self, label: str, delta: int) -> None:
        self._counts[label] += delta
        self._export(label, self._counts[label])

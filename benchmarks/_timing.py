"""Timing several variants side by side: the order in which they take turns."""

from __future__ import annotations


def turn_order(count: int, turn: int) -> list[int]:
    """The order in which ``count`` variants run on ``turn``: a rotation, so that over
    ``count`` turns each variant goes first (and last) once, and none is always the one
    that runs right after a warm cache or a change of machine load."""
    return [(turn + i) % count for i in range(count)]

"""Numbers in words for people: one way to say a duration everywhere (CLI, estimates, explanations)."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """3.2 d, 5.0 h, 12 min, 40 s."""
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"

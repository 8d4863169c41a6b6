"""Repeated timing with median / min / max (wall clock, ``perf_counter``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

__all__ = ['repeat', 'stats']


def stats(samples: list[float]) -> dict:
    """``{'median', 'min', 'max', 'n'}`` of a list of seconds (rounded to µs)."""
    return {
        'median': round(statistics.median(samples), 6),
        'min': round(min(samples), 6),
        'max': round(max(samples), 6),
        'n': len(samples),
    }


def repeat(
    fn: Callable[[], object],
    repeats: int,
    warmup: int = 1,
    budget_s: float | None = None,
) -> dict:
    """Run ``fn`` ``warmup`` times untimed, then time it ``repeats`` times.

    With ``budget_s``, stop early (after at least 3 timed runs) once the timed
    runs have used that many seconds; small calls get more repeats by passing
    a large ``repeats`` and a budget.
    """
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    spent = 0.0
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        samples.append(dt)
        spent += dt
        if budget_s is not None and len(samples) >= 3 and spent >= budget_s:
            break
    return stats(samples)

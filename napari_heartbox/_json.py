"""Strict JSON (RFC 8259) for every file and line the package writes."""

from __future__ import annotations

import math

__all__ = ['json_safe']


def json_safe(obj):
    """``obj`` with every non-finite float replaced by None (valid JSON, RFC 8259)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj

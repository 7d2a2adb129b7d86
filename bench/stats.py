"""Percentiles of the latencies the workers recorded."""

from array import array
from typing import Any

import numpy as np


def latency_summary(values: array) -> dict[str, Any]:
    """Count, mean, p50/p90/p99/max in milliseconds (None when nothing was measured)."""
    if not len(values):
        return {"count": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    data = np.frombuffer(values, dtype=np.float32)
    p50, p90, p99 = np.percentile(data, [50, 90, 99])
    return {
        "count": int(data.size),
        "mean": round(float(data.mean()), 2),
        "p50": round(float(p50), 2),
        "p90": round(float(p90), 2),
        "p99": round(float(p99), 2),
        "max": round(float(data.max()), 2),
    }


def cdf_points(values: array, points: int = 400) -> tuple[list[float], list[float]]:
    """A down-sampled empirical CDF (latency ms, fraction) for plotting."""
    if not len(values):
        return [], []
    data = np.sort(np.frombuffer(values, dtype=np.float32))
    idx = np.unique(np.linspace(0, data.size - 1, min(points, data.size)).astype(int))
    return [float(data[i]) for i in idx], [float((i + 1) / data.size) for i in idx]

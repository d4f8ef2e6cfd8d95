"""Feature statistics as LeRobot stores them (meta/stats.json and the episodes' `stats/<feature>/<stat>` columns)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def array_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """min, max, mean, std and count over the first axis of (N, ...) values."""
    values = np.asarray(values, dtype=np.float64)
    return {
        "min": values.min(axis=0),
        "max": values.max(axis=0),
        "mean": values.mean(axis=0),
        "std": values.std(axis=0),
        "count": np.array([len(values)]),
    }


def image_stats(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel stats of (N, H, W, 3) uint8 images scaled to [0, 1], shaped (3, 1, 1) like LeRobot's; count is
    the number of frames."""
    pixels = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
    stats = array_stats(pixels)
    stats = {key: value.reshape(-1, 1, 1) for key, value in stats.items() if key != "count"}
    return {**stats, "count": np.array([len(images)])}


def merge_stats(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stats of the union of the parts: count-weighted mean, pooled variance."""
    counts = np.array([float(part["count"][0]) for part in parts])
    weights = (counts / counts.sum()).reshape(-1, *[1] * np.ndim(parts[0]["mean"]))
    means = np.stack([part["mean"] for part in parts])
    mean = (weights * means).sum(axis=0)
    second = (weights * (np.stack([part["std"] for part in parts]) ** 2 + means**2)).sum(axis=0)
    return {
        "min": np.min([part["min"] for part in parts], axis=0),
        "max": np.max([part["max"] for part in parts], axis=0),
        "mean": mean,
        "std": np.sqrt(np.maximum(second - mean**2, 0.0)),
        "count": np.array([int(counts.sum())]),
    }


def to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, list]]:
    """Nested lists, as stats.json holds them."""
    return {feature: {key: np.asarray(value).tolist() for key, value in entry.items()} for feature, entry in stats.items()}

"""PNG learning curves from logged scalars (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MAX_PANELS = 12
"""At most this many metrics are drawn (the first ones in logging order); the rest stay in TensorBoard/JSON."""


def plot_learning_curves(
    history: Mapping[str, Sequence[tuple[int, float]]], path: str | os.PathLike, title: str = ""
) -> Path:
    """One panel per metric (value against step), saved as a PNG at ``path``."""
    names = [name for name, points in history.items() if points][:MAX_PANELS]
    if not names:
        raise ValueError("no logged scalars to plot")
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        steps, values = zip(*history[name])
        ax.plot(steps, values, marker="." if len(steps) < 40 else None, linewidth=1.2)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)
    return path

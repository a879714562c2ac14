"""Plots shared by notebooks and reports: the notebook's figure and the report's are the same function.

Each `draw_*` draws on a given matplotlib Axes (a notebook redraws it live); `figure()` makes a Figure
without pyplot (safe in scripts and threads), and `save` writes a PNG for the report.

    fig, ax = figure()
    draw_loss(ax, history)
    save(fig, fig_dir / "baseline_loss.png")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure


def figure(width: float = 6.0, height: float = 3.5) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def draw_loss(ax: Axes, history, unit: str = "nats / byte") -> None:
    """Train loss per step (faint) and validation loss at each evaluation (markers) of a TrainHistory."""
    ax.clear()
    ax.plot(history.steps, history.train_loss, alpha=0.5, label="train")
    ax.plot(history.eval_steps, history.val_loss, marker="o", label="val (held out)")
    ax.set_xlabel("step")
    ax.set_ylabel(f"loss ({unit})")
    ax.legend()
    ax.grid(alpha=0.3)


def draw_speed(ax: Axes, sizes: Sequence[int], series: dict[str, Sequence[float]], xlabel: str = "tokens",
               ylabel: str = "ms per call") -> None:
    """One line per candidate (e.g. a backend) of a measured time against a size, both axes logarithmic."""
    if any(len(values) != len(sizes) for values in series.values()):
        raise ValueError("every series needs one value per size")
    ax.clear()
    for name, values in series.items():
        ax.plot(sizes, values, marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(alpha=0.3, which="both")

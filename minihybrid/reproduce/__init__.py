"""Reproductions: one module per paper, each with `run(out_dir) -> Section`.

`python -m minihybrid reproduce [--fast] [--only NAME]` runs the registered ones and writes
results/REPORT.md (see report.py). Register a new module by adding its name to REPRODUCTIONS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path

REPRODUCTIONS = ["baseline"]


@dataclass
class Section:
    """One reproduction's part of the report: markdown text and tables, figures saved under out_dir."""

    title: str
    markdown: str
    figures: list[tuple[Path, str]] = field(default_factory=list)  # (png path, caption)
    seconds: float = 0.0


def load(name: str):
    if name not in REPRODUCTIONS:
        raise ValueError(f"unknown reproduction {name!r}; registered: {', '.join(REPRODUCTIONS)}")
    return import_module(f"minihybrid.reproduce.{name}")


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)

"""Reproductions: one module per paper, each with `settings()` and `run(fig_dir, seed) -> Section`.

`python -m minihybrid reproduce [--fast] [--only NAME ...]` runs the registered ones; each saves its own
section (report.py), and results/REPORT.md is assembled from every saved section in registry order.
Register a new module by adding its name (the module's slug, e.g. "hybrid") to REPRODUCTIONS.

A Section carries the markdown text, the figures, the measured data rows (JSON-able dicts) and the claims:
each claim is the paper's statement, what was measured here, a verdict and why, drawn by `claims_table`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path

REPRODUCTIONS = ["baseline", "hybrid", "deconstruct", "sparse", "layerskip", "compress"]
VERDICTS = ("holds", "partly", "does not hold")


@dataclass(frozen=True)
class Claim:
    """One row of a claims table: the paper's claim, what we measured, a verdict at this scale, and why."""

    claim: str
    measured: str
    verdict: str
    why: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, got {self.verdict!r}")


@dataclass
class Section:
    """One reproduction's part of the report.

    markdown: the text and tables; figures: (png path under fig_dir, caption); data: rows of measured
    numbers saved as JSON beside the section; claims: the claims table (drawn after the markdown).
    """

    title: str
    markdown: str
    figures: list[tuple[Path, str]] = field(default_factory=list)
    data: list[dict] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)


def load(name: str):
    """The registered reproduction module `name`; ValueError naming the registered ones otherwise."""
    if name not in REPRODUCTIONS:
        raise ValueError(f"unknown reproduction {name!r}; registered: {', '.join(REPRODUCTIONS)}")
    return import_module(f"minihybrid.reproduce.{name}")


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def claims_table(claims: list[Claim]) -> str:
    """The one way every module's claims are drawn: claim | measured here | verdict | why."""
    return markdown_table(["the paper's claim", "measured here", "verdict at this scale", "why"],
                          [[c.claim, c.measured, f"**{c.verdict}**", c.why] for c in claims])

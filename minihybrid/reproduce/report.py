"""Run reproductions, save each one's section, and assemble REPORT.md from every saved section.

Layout of an output folder (results/ for full runs, build/report-fast/ for fast ones):

    REPORT.md              assembled from sections/, in registry order, naming the sections not yet run
    sections/<name>.md     one reproduction's rendered section (text, tables, claims table, figures)
    sections/<name>.json   its run record: title, mode, seed, date, duration, versions, data rows, claims
    figures/<name>_*.png   its figures

`--only X` runs X, rewrites X's two section files and reassembles REPORT.md, keeping every other section.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import time
from pathlib import Path

from minihybrid import reproduce
from minihybrid.runtime import environment_info, fast_mode

HEADER = "# minihybrid — reproduction report"


def run_all(out_dir: Path, only: list[str] | None = None, seed: int = 0) -> Path:
    """Run the reproductions (all, or `only`), save their sections, assemble out_dir/REPORT.md, return it."""
    names = only or reproduce.REPRODUCTIONS
    modules = [reproduce.load(name) for name in names]  # unknown names fail before any work
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    for name, module in zip(names, modules):
        print(f"== reproduce {name}", flush=True)
        started, t0 = dt.datetime.now(), time.perf_counter()
        section = module.run(out_dir / "figures", seed=seed)
        save_section(out_dir, name, section, seed, started, time.perf_counter() - t0)
    return assemble(out_dir)


def save_section(out_dir: Path, name: str, section: reproduce.Section, seed: int, started: dt.datetime,
                 seconds: float) -> None:
    """Write sections/<name>.json (the run record) and sections/<name>.md (the rendered section)."""
    record = {
        "name": name,
        "title": section.title,
        "mode": "fast" if fast_mode() else "full",
        "seed": seed,
        "started": started.isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "environment": environment_info(),
        "figures": [[Path(png).name, caption] for png, caption in section.figures],
        "data": section.data,
        "claims": [dataclasses.asdict(c) for c in section.claims],
    }
    folder = out_dir / "sections"
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / f"{name}.json", json.dumps(record, indent=1, default=_json_number) + "\n")
    _write(folder / f"{name}.md", render_section(record, section.markdown, section.claims))


def render_section(record: dict, markdown: str, claims: list[reproduce.Claim]) -> str:
    env = record["environment"]
    mode = "fast (tiny configurations, for smoke tests)" if record["mode"] == "fast" else "full"
    lines = [
        f"## {record['title']}",
        "",
        (f"_Ran in {record['seconds']:.0f} s on {record['started']}; mode: {mode}; seed: {record['seed']}; "
         f"torch {env['torch']}, numba {env['numba']}, {env['cpu cores']} cores, CUDA: {env['cuda']}. "
         f"Reproduce with `make reproduce ONLY={record['name']}`._"),
        "",
        markdown.strip(),
        "",
    ]
    if claims:
        lines += ["### Claims", "", reproduce.claims_table(claims), ""]
    for png, caption in record["figures"]:
        lines += [f"![{caption}](figures/{png})", "", f"*{caption}*", ""]
    lines += ["<details><summary>Environment of this run</summary>", "",
              reproduce.markdown_table(["", ""], [[k, v] for k, v in env.items()]), "", "</details>", ""]
    return "\n".join(lines)


def assemble(out_dir: Path) -> Path:
    """REPORT.md from every saved section, in registry order; names the registered sections not yet run."""
    saved = {name: out_dir / "sections" / f"{name}.md" for name in reproduce.REPRODUCTIONS}
    missing = [name for name, path in saved.items() if not path.is_file()]
    lines = [HEADER, "",
             ("Assembled by `python -m minihybrid reproduce` from the sections saved in `sections/`, one per "
              "reproduction, each with its own mode, seed, date, duration and versions."), ""]
    if missing:
        lines += [f"Not yet run: {', '.join(missing)} (`make reproduce ONLY=<name>`).", ""]
    body = [path.read_text().strip() for path in saved.values() if path.is_file()]
    path = out_dir / "REPORT.md"
    _write(path, "\n".join(lines) + "\n" + "\n\n".join(body) + "\n")
    print(f"wrote {path}")
    return path


def _write(path: Path, text: str) -> None:
    """Replace path atomically: an interrupted run never leaves half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _json_number(value):
    """JSON for numpy / torch scalars in data rows; anything else is a bug in the reproduction."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"data rows must hold JSON values, got {type(value).__name__}: {value!r}")

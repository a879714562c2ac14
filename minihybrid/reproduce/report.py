"""Run registered reproductions and assemble results/REPORT.md (tables, PNG figures, seed, versions)."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from minihybrid import reproduce
from minihybrid.runtime import environment_info, fast_mode


def run_all(out_dir: Path, only: list[str] | None = None, seed: int = 0) -> Path:
    """Run the reproductions (all, or `only`), write out_dir/REPORT.md and return its path."""
    names = only or reproduce.REPRODUCTIONS
    modules = [reproduce.load(name) for name in names]  # unknown names fail before any work
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "figures").mkdir(exist_ok=True)
    sections = []
    for name, module in zip(names, modules):
        print(f"== reproduce {name}", flush=True)
        t0 = time.perf_counter()
        section = module.run(out_dir / "figures", seed=seed)
        section.seconds = time.perf_counter() - t0
        sections.append(section)
    path = out_dir / "REPORT.md"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(render(sections, seed))
    os.replace(tmp, path)
    print(f"wrote {path}")
    return path


def render(sections, seed: int) -> str:
    env = environment_info()
    mode = "fast (tiny configurations, for smoke tests)" if fast_mode() else "full"
    lines = [
        "# minihybrid — reproduction report",
        "",
        (f"Generated {dt.datetime.now().isoformat(timespec='seconds')} by `python -m minihybrid reproduce`; "
         f"mode: {mode}; seed: {seed}."),
        "",
        reproduce.markdown_table(["", ""], [[k, v] for k, v in env.items()]),
        "",
    ]
    for s in sections:
        lines += [f"## {s.title}", "", f"_Ran in {s.seconds:.0f} s._", "", s.markdown.strip(), ""]
        for png, caption in s.figures:
            lines += [f"![{caption}](figures/{png.name})", "", f"*{caption}*", ""]
    return "\n".join(lines)

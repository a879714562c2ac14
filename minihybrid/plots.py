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
from matplotlib.patches import Rectangle


def figure(width: float = 6.0, height: float = 3.5, ncols: int = 1):
    """(Figure, Axes), or (Figure, array of ncols Axes) side by side."""
    fig = Figure(figsize=(width, height))
    return fig, fig.subplots(1, ncols)


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
    """One line per candidate (e.g. a backend) of a measured quantity (a time, bytes, a perplexity) against a
    size, both axes logarithmic."""
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


def draw_retention(ax: Axes, sizes: Sequence[int], series: dict[str, Sequence[float]],
                   references: dict[str, float] | None = None, xlabel: str = "context (tokens)") -> None:
    """Quality kept (a ratio, 1 = nothing lost; e.g. dense / sparse perplexity) per candidate against a size
    (log axis), drawn in percent, with reference levels (e.g. a paper's figures) as dashed lines."""
    if any(len(values) != len(sizes) for values in series.values()):
        raise ValueError("every series needs one value per size")
    ax.clear()
    for name, values in series.items():
        ax.plot(sizes, [100 * v for v in values], marker="o", label=name)
    for name, level in (references or {}).items():
        ax.axhline(100 * level, linestyle="--", color="gray", linewidth=1)
        ax.annotate(name, (sizes[0], 100 * level), fontsize=7, color="gray", va="bottom")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(sizes), [f"{n:,}" for n in sizes])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("quality kept (%)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def draw_lines(ax: Axes, series: dict[str, dict], xlabel: str, ylabel: str) -> None:
    """One line per name through its {x: y} points, linear axes."""
    ax.clear()
    for name, points in series.items():
        ax.plot(list(points), list(points.values()), marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def draw_tradeoff(ax: Axes, points: dict[str, tuple[float, float]], xlabel: str, ylabel: str) -> None:
    """A labelled point per name at (x, y), e.g. (memory, perplexity): lower left is better on both."""
    ax.clear()
    for name, (x, y) in points.items():
        ax.plot(x, y, marker="o", linestyle="", color="tab:blue")
        ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def draw_groups(ax: Axes, row: Sequence[float], scales: Sequence[float], mins: Sequence[float],
                group_size: int, bits: int) -> None:
    """One weight row (K values) as dots, with each group's representable range [m, m + s (2**bits - 1)]
    shaded: a wide group (one large weight) spends its 2**bits codes on a coarse grid."""
    ax.clear()
    ax.plot(range(len(row)), row, ".", markersize=3, color="tab:blue")
    for g, (s, m) in enumerate(zip(scales, mins)):
        ax.fill_between([g * group_size, (g + 1) * group_size - 1], m, m + s * (2**bits - 1),
                        color="tab:orange", alpha=0.25, linewidth=0)
    ax.set_xlabel("input k")
    ax.set_ylabel("weight")
    ax.grid(alpha=0.3)


def draw_mask(ax: Axes, mask, title: str) -> None:
    """A keep-mask (N, K) as black (kept) and white (pruned) squares."""
    ax.clear()
    ax.imshow(mask, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("input")
    ax.set_ylabel("output")


MIXER_COLOURS = {"A": "tab:blue", "S": "tab:cyan", "M": "tab:orange", "H": "tab:purple", "F": "tab:gray",
                 "T": "tab:green", "N": "tab:red", "R": "tab:brown", "P": "tab:pink", "E": "tab:olive"}


def draw_patterns(ax: Axes, patterns: dict[str, str]) -> None:
    """One row of coloured squares per model: block i's mixer letter (A attention, M SSM, ...), input left."""
    ax.clear()
    for row, (name, letters) in enumerate(patterns.items()):
        for i, letter in enumerate(letters):
            ax.add_patch(Rectangle((i, -row - 0.9), 0.9, 0.8, color=MIXER_COLOURS.get(letter, "tab:gray")))
            ax.text(i + 0.45, -row - 0.5, letter, ha="center", va="center", color="white", fontsize=8)
    ax.set_xlim(0, max(map(len, patterns.values())))
    ax.set_ylim(-len(patterns), 0)
    ax.set_yticks([-row - 0.5 for row in range(len(patterns))], list(patterns))
    ax.set_xlabel("block (input -> output)")
    ax.set_frame_on(False)


def draw_bars(ax: Axes, means: dict[str, float], stds: dict[str, float] | None = None,
              ylabel: str = "", zoom: bool = True) -> None:
    """A bar per name with ±std error bars; zoom narrows the y range to the bars' spread."""
    ax.clear()
    names = list(means)
    errors = [stds.get(n, 0.0) for n in names] if stds else None
    ax.bar(range(len(names)), [means[n] for n in names], yerr=errors, capsize=3, color="tab:blue", alpha=0.8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    if zoom and names:
        low = min(means[n] - (stds or {}).get(n, 0.0) for n in names)
        high = max(means[n] + (stds or {}).get(n, 0.0) for n in names)
        pad = 0.15 * (high - low or 1.0)
        ax.set_ylim(low - pad, high + pad)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")


def draw_accuracy(ax: Axes, xs: Sequence, series: dict[str, Sequence[float]], xlabel: str) -> None:
    """One line per model of an accuracy (0..1) against a task size (e.g. key-value pairs)."""
    ax.clear()
    for name, values in series.items():
        ax.plot(range(len(xs)), values, marker="o", label=name)
    ax.set_xticks(range(len(xs)), [str(x) for x in xs])
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def draw_val_losses(ax: Axes, histories: dict, unit: str = "nats / byte") -> None:
    """Validation loss against training tokens, one line per model (name -> TrainHistory); the tokens per
    step are the same for every model, so steps stand for tokens."""
    ax.clear()
    for name, history in histories.items():
        ax.plot(history.eval_steps, history.val_loss, marker=".", label=name)
    ax.set_xlabel("step (equal tokens per step)")
    ax.set_ylabel(f"val loss ({unit})")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def draw_per_layer(ax: Axes, series: dict[str, Sequence[float | None]], ylabel: str, log: bool = True,
                   first: int = 1):
    """One line per model of a per-block quantity (None where a block has none), the first block at the left
    numbered `first` (0: as skip sets and block indices count)."""
    ax.clear()
    for name, values in series.items():
        points = [(first + i, v) for i, v in enumerate(values) if v is not None]
        ax.plot(*zip(*points), marker="o", label=name)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("block (input -> output)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")


def draw_maps(axes: Sequence[Axes], maps: dict[str, object]) -> None:
    """One (T, T) mixing map per axes (row: output position, column: the position it reads)."""
    for ax, (name, weights) in zip(axes, maps.items()):
        ax.clear()
        ax.imshow(weights, cmap="viridis", vmin=0)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])


def draw_passkey_grid(ax: Axes, rows: Sequence[dict], modes: Sequence[str]) -> None:
    """Passkey accuracy as a heat map: one row per (mode, depth), one column per length; rows are dicts with
    "mode", "depth", "length" and "accuracy" (0..1)."""
    ax.clear()
    lengths = sorted({r["length"] for r in rows})
    depths = sorted({r["depth"] for r in rows})
    cell = {(r["mode"], r["depth"], r["length"]): r["accuracy"] for r in rows}
    labels = [(mode, depth) for mode in modes for depth in depths]
    grid = [[cell.get((mode, depth, n), float("nan")) for n in lengths] for mode, depth in labels]
    ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    for i, line in enumerate(grid):
        for j, value in enumerate(line):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(lengths)), [str(n) for n in lengths])
    ax.set_yticks(range(len(labels)), [f"{mode}, depth {depth:g}" for mode, depth in labels], fontsize=7)
    ax.set_xlabel("context (tokens)")
    ax.set_title("passkey found (share)", fontsize=9)


def draw_block_selection(axes: Sequence[Axes], blocks, block_size: int, n_keys: int) -> None:
    """Which key blocks each query attends to, one panel per kv head (its group of query heads shares the
    choice): blocks (Hkv, Tq, S) block indices with -1 for none, queries at the end of n_keys keys."""
    import torch

    n_blocks = -(-n_keys // block_size)
    for h, ax in enumerate(axes):
        ax.clear()
        chosen = torch.zeros(blocks.shape[1], n_blocks + 1)
        chosen.scatter_(1, blocks[h].long().where(blocks[h] >= 0, n_blocks), 1.0)
        ax.imshow(chosen[:, :n_blocks], cmap="Greys", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        ax.set_title(f"kv head {h}", fontsize=9)
        ax.set_xlabel(f"key block ({block_size} tokens)")
        ax.set_ylabel("query position" if h == 0 else "")


def draw_heatmap(ax: Axes, matrix, title: str, xlabel: str, ylabel: str, vmin=None, vmax=None) -> None:
    """A matrix as an image with a colour bar (row 0 at the top): cosines between layers, a DP table."""
    ax.clear()
    image = ax.imshow(matrix, cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
    ax.figure.colorbar(image, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def draw_timeline(ax: Axes, rows: dict[str, Sequence[dict]]) -> None:
    """Speculative decoding against the clock, one row per decoder: each round is its draft steps (green
    if the verify pass accepted that token, red if not) then its verify pass (grey), which adds `accepted`
    + 1 tokens. A round is {"draft": [(start, end) seconds per draft step], "verify": (start, end),
    "accepted": k}; plain decoding is rounds with no draft step and k = 0."""
    if not rows or not all(rows.values()):
        raise ValueError("every row of a timeline needs at least one round")
    ax.clear()
    colours = {"accepted draft step": "tab:green", "rejected draft step": "tab:red",
               "full forward (verify)": "tab:gray"}
    for row, (name, rounds) in enumerate(rows.items()):
        y = -row
        for r in rounds:
            for i, (start, end) in enumerate(r["draft"]):
                kind = "accepted draft step" if i < r["accepted"] else "rejected draft step"
                ax.barh(y, end - start, left=start, height=0.6, color=colours[kind], edgecolor="white",
                        linewidth=0.3)
            start, end = r["verify"]
            ax.barh(y, end - start, left=start, height=0.6, color=colours["full forward (verify)"],
                    edgecolor="white", linewidth=0.3)
            ax.text((start + end) / 2, y + 0.33, str(r["accepted"] + 1), ha="center", va="bottom", fontsize=6)
        tokens = sum(r["accepted"] + 1 for r in rounds)
        ax.text(rounds[-1]["verify"][1], y, f"  {tokens} tokens, {len(rounds)} forwards of the full model",
                va="center", fontsize=7)
    for kind, colour in colours.items():
        ax.barh(0, 0, color=colour, label=kind)
    ax.set_yticks([-row for row in range(len(rows))], list(rows))
    ax.set_ylim(-len(rows) + 0.4, 0.9)
    ax.set_xlim(0, 1.3 * max(rounds[-1]["verify"][1] for rounds in rows.values()))  # room for the totals
    ax.set_xlabel("seconds since the prompt was prefilled (numbers: tokens each full forward adds)")
    ax.legend(fontsize=7, ncol=len(colours), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    ax.grid(alpha=0.3, axis="x")


def draw_dp_table(ax: Axes, scores, skip_set: Sequence[int], vmin: float | None = None) -> None:
    """CLaSp's table D (L+1, M+1) drawn with j (blocks skipped so far) upwards and i (blocks passed) to the
    right, blank where unset, and the backtracked path from (0, 0) to (L, M): a step up at i skips block
    i - 1 (red). vmin: the lowest colour (default: the path's lowest score)."""
    import torch

    table = torch.as_tensor(scores, dtype=torch.float32)
    skipped = set(skip_set)
    path = [0]
    for i in range(1, table.shape[0]):
        path.append(path[-1] + (i - 1 in skipped))
    on_path = table[torch.arange(len(path)), torch.tensor(path)]
    low = float(on_path.min()) if vmin is None else vmin
    draw_heatmap(ax, table.T, f"D(i, j): cosine with the full model's h_i (path: skip {sorted(skipped)})",
                 "blocks passed i", "blocks skipped j", vmin=low, vmax=1.0)
    ax.invert_yaxis()
    ax.plot(range(len(path)), path, color="white", linewidth=1.2)
    steps = [i for i in range(1, len(path)) if path[i] > path[i - 1]]
    ax.plot(steps, [path[i] for i in steps], "o", color="tab:red", markersize=4, label="skip block i - 1")
    ax.legend(fontsize=7, loc="upper left")


def draw_shares(ax: Axes, shares: dict[str, dict[str, float]], xlabel: str = "share of decode time") -> None:
    """One horizontal stacked bar per name: its parts' shares (name -> {part: share}, shares in 0..1)."""
    ax.clear()
    parts = list(dict.fromkeys(part for row in shares.values() for part in row))
    names = list(shares)
    left = [0.0] * len(names)
    for part in parts:
        values = [shares[name].get(part, 0.0) for name in names]
        ax.barh(range(len(names)), values, left=left, label=part)
        left = [a + b for a, b in zip(left, values)]
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, max(1.0, *left))
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=7, ncol=len(parts), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    ax.grid(alpha=0.3, axis="x")

"""Deconstructing Attention (arXiv 2510.11602) at small scale: which principles of attention matter.

Every model has the same width, depth and training tokens; only the token mixer of some blocks changes
(the variants and configurations: minihybrid.patterns.VARIANTS and CONFIGURATIONS).
1. main table, 3 seeds in full mode: standard attention, and each of the six variants uniform (every block)
   and hybrid (the odd blocks, 1-indexed; standard attention in the even ones);
2. ablations, one seed: skip (the hybrid with its variant blocks removed), and standard attention kept only
   at top / middle / bottom / every 4th / first / last / both ends, for Non-approximate and MLP;
3. for every model: Shakespeare val perplexity, induction (copy) accuracy and MQAR accuracy. The models train
   on Shakespeare windows with a share of induction and MQAR sequences mixed in, so recall can be scored;
4. perplexity against context length for uniform MLP (flat: it cannot use context) beside standard;
5. the largest pre-softmax logit per block for uniform vs hybrid Non-approximate (and standard).
Notebook 02 builds the same models from `settings()`, so one training run serves both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from minihybrid import plots
from minihybrid.config import ModelConfig
from minihybrid.data import byte_streams, induction, load_shakespeare, mqar, sample_batch
from minihybrid.patterns import VARIANTS, configuration_pattern
from minihybrid.probes import max_logits
from minihybrid.reproduce import Section
from minihybrid.reproduce.deconstruct_claims import claims, data_rows, describe
from minihybrid.reproduce.verdicts import mean_std
from minihybrid.runtime import pick
from minihybrid.train import TrainConfig, accuracy, evaluate
from minihybrid.trained import trained_model

DATA = "shakespeare-tasks"
PLACEMENTS = ("top", "middle", "bottom", "every 4th", "first", "last", "both ends")
PLACEMENT_VARIANTS = ("Non-approximate", "MLP")


@dataclass(frozen=True)
class Settings:
    """Every size of the module, fast or full, in one place."""

    model: ModelConfig  # shared sizes; each configuration swaps in its pattern
    n_layers: int
    train: TrainConfig
    seeds: tuple[int, ...]  # of the main table (the ablations use the first)
    text_examples: int  # Shakespeare windows in the training pool
    task_examples: int  # induction and MQAR sequences in the pool, each
    mqar_pairs: int
    test_examples: int  # per recall task
    val_windows: int  # Shakespeare val windows behind each perplexity
    contexts: tuple[int, ...]  # perplexity against context length
    context_windows: int  # val windows per context length


def settings(seed: int = 0) -> Settings:
    seq_len = pick(64, 128)
    model = ModelConfig(vocab_size=256, d_model=pick(64, 256), n_heads=pick(2, 8), pattern="A",
                        max_seq_len=seq_len, embed_init_std=0.3)  # 0.02 stalls attention on unigrams
    return Settings(
        model=model,
        n_layers=pick(4, 8),
        train=TrainConfig(steps=pick(6, 100), batch_size=8, seq_len=seq_len, lr=3e-3,
                          warmup_steps=pick(2, 10), eval_every=pick(6, 50), eval_batches=pick(2, 8),
                          seed=seed),
        seeds=pick((seed,), (seed, seed + 1, seed + 2)),
        text_examples=pick(64, 3000),
        task_examples=pick(16, 500),
        mqar_pairs=pick(4, 8),
        test_examples=pick(16, 128),
        val_windows=pick(16, 128),
        contexts=pick((8, 32, 64), (4, 8, 16, 32, 64, 128)),
        context_windows=pick(8, 64),
    )


def main_configurations(n_layers: int) -> dict[str, str]:
    """standard, then each variant uniform and hybrid: {name: layer pattern}."""
    out = {"standard": "A" * n_layers}
    for name, letter in VARIANTS.items():
        if name != "standard":
            out[f"{name} uniform"] = configuration_pattern("uniform", letter, n_layers)
            out[f"{name} hybrid"] = configuration_pattern("hybrid", letter, n_layers)
    return out


def ablation_configurations(n_layers: int) -> dict[str, str]:
    """skip, and standard attention kept only at each placement for Non-approximate and MLP."""
    out = {"skip": configuration_pattern("skip", "A", n_layers)}
    for name in PLACEMENT_VARIANTS:
        for placement in PLACEMENTS:
            out[f"{name} @ {placement}"] = configuration_pattern(placement, VARIANTS[name], n_layers)
    return out


def model_config(setup: Settings, pattern: str, fixed_passage: list[int]) -> ModelConfig:
    options = {"P": {"passage": fixed_passage}} if "P" in pattern else {}
    return replace(setup.model, mixer_options=options).with_pattern(pattern)


def task_data(setup: Settings) -> dict:
    """The training pool (Shakespeare windows, induction and MQAR sequences, shuffled), Shakespeare's val
    stream, and the recall test sets."""
    streams = byte_streams("shakespeare", load_shakespeare())
    t, n = setup.train.seq_len, setup.task_examples
    text = sample_batch(streams["train"], setup.text_examples, t, torch.Generator().manual_seed(0))
    parts = [text, induction(n, t, 256, seed=1), mqar(n, t, setup.mqar_pairs, vocab_size=256, seed=2)]
    inputs, labels = (torch.cat([p[i] for p in parts]) for i in (0, 1))
    order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(3))
    return {
        "train": (inputs[order], labels[order]),
        "validation": streams["validation"],
        "passage": streams["train"][:setup.model.max_seq_len].tolist(),  # FixedSeqQK's fixed text
        "induction": induction(setup.test_examples, t, 256, seed=11),
        "mqar": mqar(setup.test_examples, t, setup.mqar_pairs, vocab_size=256, seed=12),
    }


def train_models(setup: Settings, data: dict, configurations: dict[str, str], seeds=None, on_eval=None):
    """{name: [(model, history) per seed]} for the given {name: pattern} (cached on disk)."""
    seeds = setup.seeds if seeds is None else seeds
    streams = {"train": data["train"], "validation": data["validation"]}
    return {
        name: [trained_model(model_config(setup, pattern, data["passage"]), replace(setup.train, seed=seed),
                             streams, DATA, on_eval=on_eval) for seed in seeds]
        for name, pattern in tqdm(configurations.items(), desc="configurations")
    }


def scores(model, data: dict, setup: Settings) -> dict[str, float]:
    """Val perplexity (over Shakespeare windows of the training length) and recall accuracies."""
    nll = evaluate(model, data["validation"], 16, setup.train.seq_len, max_batches=setup.val_windows // 16)
    return {"ppl": math.exp(nll), "induction": accuracy(model, data["induction"]),
            "mqar": accuracy(model, data["mqar"])}


@torch.no_grad()
def perplexity_by_context(model, data: dict, setup: Settings) -> dict[int, float]:
    """{c: val perplexity of the same `context_windows` target bytes, each predicted from the c bytes before
    it}: only the context changes from one length to the next."""
    stream, longest = data["validation"], max(setup.contexts)
    targets = torch.linspace(longest, len(stream) - 1, setup.context_windows).long()
    out = {}
    for c in setup.contexts:
        windows = stream[targets[:, None] - c + torch.arange(c)]  # (windows, c): the bytes before each target
        logits = model(windows, last_only=True)[:, 0]
        out[c] = math.exp(torch.nn.functional.cross_entropy(logits, stream[targets]).item())
    return out


def logit_profile(runs: dict, data: dict, setup: Settings) -> dict[str, list]:
    """{model: largest |pre-softmax logit| per block, None but in its Non-approximate blocks (standard: every
    block)} on four val windows, first seed."""
    windows = data["validation"][: 4 * setup.train.seq_len].view(4, -1)
    out = {}
    for name in ("standard", "Non-approximate uniform", "Non-approximate hybrid"):
        model = runs[name][0][0]
        letters = model.config.pattern_string
        out[name] = [v if letter == "N" or name == "standard" else None
                     for v, letter in zip(max_logits(model, windows), letters)]
    return out


def run(fig_dir: Path, seed: int = 0) -> Section:
    setup = settings(seed)
    data = task_data(setup)
    main = train_models(setup, data, main_configurations(setup.n_layers))
    ablations = train_models(setup, data, ablation_configurations(setup.n_layers), seeds=setup.seeds[:1])
    measured = {name: [scores(model, data, setup) for model, _ in seeds]
                for name, seeds in tqdm({**main, **ablations}.items(), desc="scoring")}
    by_context = {name: perplexity_by_context(main[name][0][0], data, setup)
                  for name in ("standard", "MLP uniform")}
    logits = logit_profile(main, data, setup)

    return Section("Deconstructing attention: which principles matter", describe(setup, main, measured),
                   draw_figures(fig_dir, setup, main, measured, by_context, logits),
                   data=data_rows(measured, by_context, logits),
                   claims=claims(setup, measured, by_context, logits))


def draw_figures(fig_dir: Path, setup: Settings, main: dict, measured: dict, by_context: dict, logits: dict):
    """The section's figures: [(png path, caption)]."""
    figures = []
    fig, ax = plots.figure(6, 4.5)
    plots.draw_patterns(ax, main_configurations(setup.n_layers))
    figures.append((plots.save(fig, fig_dir / "deconstruct_patterns.png"), "The main configurations"))

    fig, ax = plots.figure(7, 3.5)
    ppl = {name: mean_std([s["ppl"] for s in measured[name]]) for name in main}
    plots.draw_bars(ax, {n: m for n, (m, _) in ppl.items()}, {n: s for n, (_, s) in ppl.items()},
                    "val perplexity", zoom=False)
    ax.set_yscale("log")
    caption = f"Val perplexity after equal tokens (mean ± std, {len(setup.seeds)} seeds; log scale)"
    figures.append((plots.save(fig, fig_dir / "deconstruct_perplexity.png"), caption))

    fig, ax = plots.figure(7, 3.5)
    plots.draw_val_losses(ax, {name: seeds[0][1] for name, seeds in main.items()})
    figures.append((plots.save(fig, fig_dir / "deconstruct_curves.png"), "Val loss in training (first seed)"))

    fig, axes = plots.figure(10, 3.5, ncols=2)
    plots.draw_speed(axes[0], setup.contexts, {n: list(v.values()) for n, v in by_context.items()},
                     xlabel="context (bytes)", ylabel="val perplexity")
    plots.draw_per_layer(axes[1], logits, "largest |pre-softmax logit|")
    caption = "Left: perplexity against context length. Right: the largest pre-softmax logit per block"
    figures.append((plots.save(fig, fig_dir / "deconstruct_context_logits.png"), caption))
    return figures

"""Hybrid architectures (arXiv 2510.04800) at small scale: attention + Mamba-2, between and inside blocks.

Four measurements over the same family of models (every variant has the same width and depth):
1. language modelling: val NLL on held-out Shakespeare after equal training tokens, 3 seeds in full mode
   (pure attention, pure SSM, sliding window, inter-layer 1:1 and 1:5, intra-layer, attention at the front,
   sandwich);
2. recall: MQAR accuracy against the number of key-value pairs, zoology's layout, on models trained on MQAR;
3. length: passkey retrieval at 1x and 2x the length the models were trained on;
4. cost: decode cache bytes and decode tokens/s at 1K-8K tokens of context.
Notebook 01 builds the same variants from `settings()` and `variants()`, so one training run serves both.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from minihybrid.config import ModelConfig
from minihybrid.context_cost import cache_megabytes, decode_timings
from minihybrid.data import ByteTokenizer, byte_streams, load_shakespeare, mqar, passkey
from minihybrid.model import HybridLM
from minihybrid.patterns import expand_ratio
from minihybrid.plots import draw_accuracy, draw_bars, draw_patterns, draw_speed, figure, save
from minihybrid.reproduce import Section
from minihybrid.reproduce.hybrid_claims import claims, data_rows, describe
from minihybrid.reproduce.verdicts import mean_std
from minihybrid.runtime import pick
from minihybrid.timing import ratio
from minihybrid.train import TrainConfig, accuracy
from minihybrid.trained import trained_model

DATA = "shakespeare-bytes"
RECALL_VARIANTS = ("attention", "SSM", "inter 1:5", "intra 1:5")  # the pure models and the 1:5 hybrids


@dataclass(frozen=True)
class Settings:
    """Every size of the module, fast or full, in one place."""

    lm_model: ModelConfig  # the language models' shared sizes (each variant swaps in its pattern)
    lm_layers: int  # blocks of every language model
    lm_train: TrainConfig
    seeds: tuple[int, ...]
    recall_model: ModelConfig  # the MQAR and passkey models' shared sizes
    mqar_train: TrainConfig
    mqar_train_len: int
    mqar_train_pairs: tuple[int, ...]  # key-value pairs mixed in training, at mqar_train_len tokens
    mqar_test_pairs: tuple[tuple[int, int], ...]  # (seq_len, key-value pairs) scored
    mqar_examples: int  # training examples per (seq_len, pairs)
    passkey_train: TrainConfig  # its seq_len is the passkey training length
    passkey_examples: int
    test_examples: int
    contexts: tuple[int, ...]  # decode cost at these context lengths
    decode_new: int
    decode_repeats: int


def settings(seed: int = 0) -> Settings:
    # fast mode trains on 64 tokens: a 32-token window keeps sliding-window attention distinct from full
    m_options = {"M": {"d_state": 32}, "H": {"d_state": 32}, **pick({"S": {"window": 32}}, {})}
    lm_model = ModelConfig(vocab_size=256, d_model=pick(64, 128), n_heads=4, pattern="A",
                           max_seq_len=pick(128, 256), mixer_options=m_options)
    return Settings(
        lm_model=lm_model,
        lm_layers=pick(6, 12),
        lm_train=TrainConfig(steps=pick(8, 64), batch_size=16, seq_len=pick(64, 128), lr=3e-3,
                             warmup_steps=pick(2, 10), eval_every=pick(8, 32), eval_batches=pick(2, 8),
                             seed=seed),
        seeds=pick((seed,), (seed, seed + 1, seed + 2)),
        recall_model=replace(lm_model, d_model=64, max_seq_len=512),  # narrower: recall fits the budget
        mqar_train=TrainConfig(steps=pick(6, 200), batch_size=64, lr=3e-3, warmup_steps=pick(2, 25),
                               eval_every=pick(6, 50), eval_batches=2, seed=seed),
        mqar_train_len=64,
        mqar_train_pairs=(4, 8, 16),
        mqar_test_pairs=((64, 4), (64, 8), (64, 16), (128, 32), (256, 64)),
        mqar_examples=pick(256, 6000),
        passkey_train=TrainConfig(steps=pick(6, 120), batch_size=16, seq_len=256, lr=3e-3,
                                  warmup_steps=pick(2, 15), eval_every=pick(6, 50), eval_batches=2,
                                  seed=seed),
        passkey_examples=pick(90, 2700),
        test_examples=pick(20, 200),
        contexts=pick((256, 512), (1024, 2048, 4096, 8192)),
        decode_new=pick(4, 32),
        decode_repeats=pick(1, 3),
    )


def variants(n_layers: int = 12) -> dict[str, str]:
    """The compared layer patterns (A attention, M Mamba-2, S sliding window, H intra-layer hybrid)."""
    return {
        "attention": "A" * n_layers,
        "SSM": "M" * n_layers,
        "sliding window": "S" * n_layers,
        "inter 1:1": expand_ratio("1:1", n_layers, "M"),
        "inter 1:5": expand_ratio("1:5", n_layers, "M"),
        "intra 1:5": expand_ratio("1:5", n_layers, "M", attention="H"),
        "attention at the front": expand_ratio("1:5@front", n_layers, "M"),
        "sandwich": expand_ratio("1:5@sandwich", n_layers, "M"),
    }


def lm_config(setup: Settings, pattern: str) -> ModelConfig:
    return setup.lm_model.with_pattern(pattern)


def train_language_models(setup: Settings, names=None, on_eval=None) -> dict[str, list]:
    """{variant: [(model, history) per seed]} trained on Shakespeare bytes (cached on disk)."""
    streams = byte_streams("shakespeare", load_shakespeare())
    runs = {}
    for name, pattern in tqdm(variants(setup.lm_layers).items(), desc="language models"):
        if names is not None and name not in names:
            continue
        runs[name] = [
            trained_model(
                lm_config(setup, pattern), replace(setup.lm_train, seed=seed), streams, DATA, on_eval=on_eval
            )
            for seed in setup.seeds
        ]
    return runs


def recall_data(setup: Settings) -> dict:
    """The recall tasks' examples: MQAR training mixture and test sets {(seq_len, pairs): examples};
    passkey training set (needles at depths 0..1) and test sets {"1x" / "2x": examples} at depths 0.1..0.9."""
    tok = ByteTokenizer()
    n, length = setup.mqar_examples, setup.mqar_train_len
    parts = [mqar(n, length, pairs, vocab_size=256, seed=100 + pairs) for pairs in setup.mqar_train_pairs]
    mqar_tests = {
        (t, pairs): mqar(setup.test_examples, t, pairs, vocab_size=256, seed=200 + pairs)
        for t, pairs in setup.mqar_test_pairs
    }
    t = setup.passkey_train.seq_len
    depths = torch.linspace(0, 1, 9).tolist()
    keys = [
        passkey(setup.passkey_examples // len(depths), t, d, tok, seed=300 + i) for i, d in enumerate(depths)
    ]
    per_depth = max(1, setup.test_examples // 5)
    passkey_tests = {
        f"{k}x": _cat(
            [
                passkey(per_depth, k * t, d, tok, seed=400 + 10 * k + i)
                for i, d in enumerate((0.1, 0.3, 0.5, 0.7, 0.9))
            ]
        )
        for k in (1, 2)
    }
    return {
        "mqar_train": _cat(parts),
        "mqar_tests": mqar_tests,
        "passkey_train": _cat(keys),
        "passkey_tests": passkey_tests,
    }


def _cat(examples: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([e[0] for e in examples]), torch.cat([e[1] for e in examples])


def recall_patterns() -> dict[str, str]:
    """The recall models' patterns: 6 blocks (1:5 is one attention block among five SSM blocks)."""
    return {name: pattern for name, pattern in variants(6).items() if name in RECALL_VARIANTS}


def train_recall_models(setup: Settings, data: dict) -> dict[str, dict]:
    """{variant: {"mqar": model, "passkey": model}}, each trained on its task alone (cached on disk)."""
    mqar_val = data["mqar_tests"][(setup.mqar_train_len, setup.mqar_train_pairs[1])]
    models = {}
    for name, pattern in tqdm(recall_patterns().items(), desc="recall models"):
        config = setup.recall_model.with_pattern(pattern)
        mqar_model, _ = trained_model(
            config, setup.mqar_train, {"train": data["mqar_train"], "validation": mqar_val}, "mqar"
        )
        passkey_model, _ = trained_model(
            config,
            setup.passkey_train,
            {"train": data["passkey_train"], "validation": data["passkey_tests"]["1x"]},
            "passkey",
        )
        models[name] = {"mqar": mqar_model, "passkey": passkey_model}
    return models


def recall_scores(models: dict[str, dict], data: dict) -> dict[str, dict]:
    """MQAR accuracy per (seq_len, pairs) (share of queries answered) and passkey accuracy at 1x / 2x
    (share of examples with every digit right), per variant."""
    return {
        name: {
            "mqar": {key: accuracy(pair["mqar"], examples) for key, examples in data["mqar_tests"].items()},
            "passkey": {
                key: accuracy(pair["passkey"], examples, per_example=True)
                for key, examples in data["passkey_tests"].items()
            },
        }
        for name, pair in models.items()
    }


def cost_table(setup: Settings) -> dict[str, dict]:
    """{variant: {"cache_mib": {context: MiB}, "tok_s": {context: tokens/s}}} for freshly initialised models
    of the language models' sizes (decode cost does not depend on the weights)."""
    names = ("attention", "SSM", "sliding window", "inter 1:1", "inter 1:5", "intra 1:5")
    patterns = {name: pattern for name, pattern in variants(setup.lm_layers).items() if name in names}
    max_len = max(setup.contexts) + setup.decode_new
    torch.manual_seed(0)
    models = {
        name: HybridLM(replace(setup.lm_model, max_seq_len=max_len).with_pattern(p))
        for name, p in patterns.items()
    }
    table = {name: {"cache_mib": {}, "tok_s": {}, "ratio_to_attention": {}} for name in models}
    for context in tqdm(setup.contexts, desc="decode cost"):
        timings = decode_timings(models, context, setup.decode_new, setup.decode_repeats)
        for name, model in models.items():
            table[name]["cache_mib"][context] = cache_megabytes(model, context)
            table[name]["tok_s"][context] = setup.decode_new / timings[name].median
            table[name]["ratio_to_attention"][context] = ratio(timings["attention"], timings[name]).format()
    return table


def run(fig_dir: Path, seed: int = 0) -> Section:
    setup = settings(seed)
    figures = []
    fig, ax = figure(6, 3)
    draw_patterns(ax, variants(setup.lm_layers))
    figures.append((save(fig, fig_dir / "hybrid_patterns.png"), "The compared layer patterns"))

    runs = train_language_models(setup)
    nll = {name: [history.val_loss[-1] for _, history in seeds] for name, seeds in runs.items()}
    stats = {name: mean_std(values) for name, values in nll.items()}
    fig, ax = figure(6, 3.5)
    draw_bars(ax, {n: m for n, (m, _) in stats.items()}, {n: s for n, (_, s) in stats.items()},
              "val NLL (nats / byte)")
    caption = f"Held-out Shakespeare NLL after equal training tokens (mean ± std, {len(setup.seeds)} seeds)"
    figures.append((save(fig, fig_dir / "hybrid_nll.png"), caption))

    data = recall_data(setup)
    scores = recall_scores(train_recall_models(setup, data), data)
    fig, ax = figure()
    draw_accuracy(ax, [f"{k}@{t}" for t, k in setup.mqar_test_pairs],
                  {n: list(s["mqar"].values()) for n, s in scores.items()}, "key-value pairs @ length")
    figures.append((save(fig, fig_dir / "hybrid_mqar.png"), "MQAR accuracy against key-value pairs"))

    cost = cost_table(setup)
    fig, axes = figure(10, 3.5, ncols=2)
    for ax, key, label in zip(axes, ("cache_mib", "tok_s"), ("decode cache (MiB)", "decode tokens/s")):
        draw_speed(ax, setup.contexts, {n: list(c[key].values()) for n, c in cost.items()},
                   xlabel="context (tokens)", ylabel=label)
    figures.append((save(fig, fig_dir / "hybrid_cost.png"), "Decode cache and decode speed against context"))
    return Section("Hybrid architectures: attention + Mamba-2 between and inside blocks",
                   describe(setup, runs, scores, cost), figures, data=data_rows(nll, scores, cost),
                   claims=claims(setup, nll, scores, cost))

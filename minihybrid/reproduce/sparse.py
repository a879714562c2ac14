"""InfLLM-V2 (arXiv 2509.24663) at small scale: dense/sparse switchable attention on the same weights.

1. training-free on SmolLM2-135M (sparse_smollm2.py): held-out Shakespeare perplexity at 2K, 4K and 8K
   tokens, dense vs sparse at two budgets (retention = dense / sparse perplexity), prefill time, and passkey
   retrieval by depth and length;
2. short-to-long on a tiny byte model (sparse_tiny.py): pretrained dense at a short length, then at 4x the
   length dense and sparse without training, and sparse after a brief sparse finetune; then the finetuned
   model switched back to dense at the short length;
3. the speed of one SmolLM2 attention layer, dense SDPA vs selection + the Numba kernel, beside the bound
   (kernels/block_sparse/speed.py, as in benchmarks/bench_block_sparse.py).
Notebook 03 reuses `settings()` and these functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from minihybrid import plots
from minihybrid.config import ModelConfig
from minihybrid.kernels.block_sparse.speed import bound, time_prefill
from minihybrid.layers.switchable import PRESETS
from minihybrid.model import HybridLM
from minihybrid.reproduce import Section
from minihybrid.reproduce.sparse_claims import claims, data_rows, describe, retention
from minihybrid.reproduce.sparse_smollm2 import BUDGETS, load_model, passkeys, perplexities
from minihybrid.reproduce.sparse_tiny import TinySettings, short_to_long
from minihybrid.runtime import pick
from minihybrid.timing import ratio
from minihybrid.train import TrainConfig


@dataclass(frozen=True)
class Settings:
    """Every size of the module, fast or full, in one place."""

    lengths: tuple[int, ...]  # SmolLM2 context lengths for perplexity
    ppl_windows: int  # held-out windows per length
    passkey_lengths: tuple[int, ...]
    passkey_depths: tuple[float, ...]
    passkey_trials: int  # per (length, depth)
    block_size: int  # of the SmolLM2 budgets (sparse_smollm2.budget_sizes)
    chunk: int  # prefill chunk of the perplexity windows
    speed_lengths: tuple[int, ...]  # one-layer speed, small preset
    speed_repeats: int
    tiny: TinySettings


def settings(seed: int = 0) -> Settings:
    short, long = pick((256, 512), (384, 1536))  # the byte-level passkey prompt alone takes 236 bytes
    tiny_sizes = {"kernel_size": 8, "stride": 4, "block_size": 16, "init_blocks": 1, "window": pick(16, 64),
                  "topk": pick(2, 4)}
    return Settings(
        lengths=pick((256, 512), (2048, 4096, 8192)),
        ppl_windows=pick(1, 2),
        passkey_lengths=pick((512,), (2048, 4096, 8192)),
        passkey_depths=pick((0.5,), (0.1, 0.5, 0.9)),
        passkey_trials=1,
        block_size=pick(16, 64),
        chunk=pick(256, 1024),
        speed_lengths=pick((2048,), (4096, 16384, 32768)),
        speed_repeats=pick(1, 3),
        tiny=TinySettings(
            model=ModelConfig(vocab_size=256, d_model=pick(64, 128), n_heads=4, n_kv_heads=2,
                              pattern="B" * pick(2, 4), max_seq_len=long, embed_init_std=0.3),
            sparse=tiny_sizes, short=short, long=long,
            pretrain=TrainConfig(steps=pick(8, 1500), batch_size=16, seq_len=short, lr=3e-3,
                                 warmup_steps=pick(2, 40), eval_every=pick(8, 100), eval_batches=pick(1, 4),
                                 seed=seed),
            finetune=TrainConfig(steps=pick(4, 60), batch_size=4, seq_len=long, lr=1e-3,
                                 warmup_steps=pick(1, 6), eval_every=pick(4, 30), eval_batches=pick(1, 4),
                                 seed=seed),
            text_examples=pick(32, 2000), passkey_examples=pick(16, 2000), test_examples=pick(8, 64),
            val_windows=pick(4, 32)),
    )


def layer_speed(setup: Settings) -> list[dict]:
    """One SmolLM2 attention layer: prefill ms dense vs the small preset, speed-up and bound per length."""
    rows = []
    for n in setup.speed_lengths:
        t = time_prefill(n, {"small": PRESETS["small"]}, setup.speed_repeats)
        rows.append({"length": n, "dense_ms": t["dense"].median_ms, "sparse_ms": t["small"].median_ms,
                     "speedup": ratio(t["dense"], t["small"]).median, "bound": bound(n, PRESETS["small"])})
    return rows


def run(fig_dir: Path, seed: int = 0) -> Section:
    setup = settings(seed)
    model, tokenizer, ids = load_model(max(*setup.lengths, *setup.passkey_lengths))
    ppl = perplexities(model, ids, setup.lengths, setup.ppl_windows, setup.block_size, setup.chunk)
    keys = passkeys(model, tokenizer, setup.passkey_lengths, setup.passkey_depths, setup.passkey_trials,
                    setup.block_size)
    params = {"B": model.num_params(non_embedding=False),
              "A": HybridLM(model.config.with_pattern("A" * model.config.n_layers)).num_params(False)}
    del model
    tiny, histories = short_to_long(setup.tiny, seed)
    speed = layer_speed(setup)
    results = {"ppl": ppl, "passkey": keys, "tiny": tiny, "speed": speed, "params": params}
    return Section("Sparse switching: InfLLM-V2's dense/sparse attention on the same weights",
                   describe(setup, results), draw_figures(fig_dir, setup, results, histories),
                   data=data_rows(results), claims=claims(setup, results))


def draw_figures(fig_dir: Path, setup: Settings, results: dict, histories: dict):
    """The section's figures: [(png path, caption)]."""
    figures = []
    fig, axes = plots.figure(10, 3.5, ncols=2)
    kept = {budget: [retention(results, n, budget) for n in setup.lengths] for budget in BUDGETS}
    plots.draw_retention(axes[0], setup.lengths, kept,
                         {"paper, RULER: 98.1%": 0.981, "paper, long reasoning: 99.7%": 0.997})
    axes[0].set_ylabel("dense ppl / sparse ppl (%)")
    speed = results["speed"]
    plots.draw_speed(axes[1], [r["length"] for r in speed],
                     {"measured": [r["speedup"] for r in speed],
                      "bound (n/2) / (|I|B + n/stride)": [r["bound"] for r in speed]},
                     xlabel="context (tokens)", ylabel="prefill speed-up over SDPA")
    caption = ("Left: the share of SmolLM2-135M's dense quality kept by each sparse budget (dense / sparse "
               "perplexity) beside the paper's figures. Right: one attention layer's prefill speed-up (small "
               "preset) beside its bound")
    figures.append((plots.save(fig, fig_dir / "sparse_quality_speed.png"), caption))

    fig, axes = plots.figure(10, 3.5, ncols=2)
    plots.draw_passkey_grid(axes[0], results["passkey"], ("dense", *BUDGETS))
    plots.draw_val_losses(axes[1], histories)
    caption = ("Left: SmolLM2 passkey retrieval by length and depth, per mode. Right: the tiny model's val "
               "loss pretraining (short, dense), then finetuning (long) sparse and, as the control, dense")
    figures.append((plots.save(fig, fig_dir / "sparse_passkey_tiny.png"), caption))
    return figures

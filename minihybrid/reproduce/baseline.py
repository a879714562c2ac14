"""Baseline: a tiny byte-level model trained on Shakespeare, and the real SmolLM2-135M on the same text.

Three measurements:
1. the tiny HybridLM's train / val loss curve on Shakespeare (held-out works),
2. SmolLM2-135M's perplexity on the same held-out works, and both models in bits per byte so that a
   byte-level and a BPE model can be compared,
3. greedy decoding tokens/s of minihybrid vs transformers on SmolLM2 (target ratio >= 1.0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from minihybrid.config import ModelConfig
from minihybrid.data import ByteTokenizer, byte_streams, corpus_text, load_shakespeare
from minihybrid.model import HybridLM
from minihybrid.plots import draw_loss, figure, save
from minihybrid.reproduce import Section, markdown_table
from minihybrid.runtime import pick
from minihybrid.train import TrainConfig
from minihybrid.trained import trained_model

DATA = "shakespeare-bytes"  # the name trained checkpoints are cached under


@dataclass(frozen=True)
class Settings:
    """Every size of the baseline, fast or full, in one place (notebook 00 trains the same model)."""

    model: ModelConfig
    train: TrainConfig
    n_chunks: int  # held-out passages both models are scored on
    chunk_chars: int
    smol_window: int  # SmolLM2's scoring window in tokens
    decode_new: int  # new tokens in the decode-speed comparison
    decode_repeats: int


def settings(seed: int = 0) -> Settings:
    return Settings(
        model=ModelConfig.from_name(pick("micro", "tiny")),
        train=TrainConfig(steps=pick(40, 1500), batch_size=16, seq_len=pick(64, 128), lr=3e-3,
                          warmup_steps=pick(5, 100), eval_every=pick(20, 100), eval_batches=pick(2, 16),
                          seed=seed),
        n_chunks=pick(2, 24), chunk_chars=pick(400, 2000), smol_window=512,
        decode_new=pick(16, 64), decode_repeats=pick(1, 5))


def run(fig_dir: Path, seed: int = 0) -> Section:
    from minihybrid.decode_speed import compare_decode_speed
    from minihybrid.pretrained import load_smollm2

    setup = settings(seed)
    # Timed first, in a fresh process: after training, both engines decode ~10-15% slower and more noisily.
    speed = compare_decode_speed(n_new=setup.decode_new, repeats=setup.decode_repeats)
    splits = load_shakespeare()
    val_text = corpus_text(splits["validation"])
    tok = ByteTokenizer()
    tiny, history = trained_model(setup.model, setup.train, byte_streams("shakespeare", splits), DATA)
    cfg = setup.train
    chunks = spread_chunks(val_text, setup.n_chunks, setup.chunk_chars)
    tiny_nll, tiny_bpb, _ = score_text(tiny, tok, chunks, window=cfg.seq_len)
    smol, smol_tok = load_smollm2()
    smol_nll, smol_bpb, smol_tokens = score_text(smol, smol_tok, chunks, window=setup.smol_window)

    fig, ax = figure()
    draw_loss(ax, history)
    curve = save(fig, fig_dir / "baseline_loss.png")
    models = [
        {"model": "tiny HybridLM (bytes)", "params_M": tiny.num_params(non_embedding=False) / 1e6,
         "unit": "byte", "val_nll": tiny_nll, "bits_per_byte": tiny_bpb},
        {"model": "SmolLM2-135M-Instruct (Q4_1 GGUF)",
         "params_M": smol.num_params(non_embedding=False) / 1e6, "unit": "BPE token", "val_nll": smol_nll,
         "bits_per_byte": smol_bpb},
    ]
    rows = [[m["model"], f"{m['params_M']:.{2 if m['params_M'] < 10 else 1}f}M", m["unit"],
             f"{m['val_nll']:.3f}", f"{math.exp(m['val_nll']):.2f}", f"{m['bits_per_byte']:.3f}"]
            for m in models]
    text = "\n\n".join([
        (f"Shakespeare, held-out works ({len(splits['validation'])} of "
         f"{len(splits['train']) + len(splits['validation'])}); tiny model: {cfg.steps} steps of "
         f"{cfg.batch_size}x{cfg.seq_len} bytes, {history.tokens_per_second:,.0f} train tokens/s; "
         f"both models scored on the same {len(chunks)} passages of {sum(map(len, chunks)):,} characters "
         f"spread over the held-out works, each in non-overlapping windows of its own context: "
         f"{cfg.seq_len} bytes for the tiny model (its training length), {setup.smol_window} tokens "
         f"(about 2 kB) for SmolLM2 ({smol_tokens:,} tokens scored). Bits per byte puts the two on one "
         f"scale; part of the gap is SmolLM2's longer context, not only its size."),
        markdown_table(["model", "params", "unit", "val NLL (nats/unit)", "perplexity", "bits per byte"],
                       rows),
        (f"Greedy decoding of SmolLM2 on this CPU: a {speed['prompt_tokens']}-token chat prompt plus "
         f"{speed['n_new']} new tokens, both engines with a KV cache on {speed['threads']} threads, "
         f"timed end to end side by side, median of {speed['repeats']}; "
         f"generated ids identical: {speed['tokens_match']}."),
        markdown_table(["engine", "tokens/s"], [
            ["minihybrid", f"{speed['minihybrid_tok_s']:.1f}"],
            ["transformers", f"{speed['transformers_tok_s']:.1f}"],
            ["ratio minihybrid / transformers", (f"**{speed['ratio']:.2f}** (target >= 1.0; "
                                                  f"{speed['ratio_min']:.2f}-{speed['ratio_max']:.2f} "
                                                  f"over the {speed['repeats']} repeats)")],
        ]),
    ])
    return Section("Baseline: tiny model on Shakespeare, SmolLM2-135M", text,
                   [(curve, "Tiny byte-level HybridLM on Shakespeare: train and validation loss")],
                   data=[*models, {"decode_speed": speed}])


def spread_chunks(text: str, n_chunks: int, chunk_chars: int) -> list[str]:
    """n_chunks passages of chunk_chars characters taken at evenly spaced offsets of text."""
    step = max(1, (len(text) - chunk_chars) // max(1, n_chunks - 1))
    return [text[i * step: i * step + chunk_chars] for i in range(n_chunks)]


@torch.no_grad()
def score_text(model: HybridLM, tokenizer, chunks: list[str], window: int) -> tuple[float, float, int]:
    """Next-token NLL of `model` over each chunk, in non-overlapping windows of at most `window` tokens.

    Works for any tokenizer with encode/decode, so a byte model and a BPE model are scored on the same
    text. Returns (nats per token, bits per byte of the scored text, tokens scored).
    """
    nats, tokens, scored_bytes = 0.0, 0, 0
    for chunk in chunks:
        ids = torch.tensor(tokenizer.encode(chunk))
        for start in range(0, ids.numel() - 1, window):
            piece = ids[start: start + window + 1]
            logits = model(piece[None, :-1])
            nats += torch.nn.functional.cross_entropy(logits[0], piece[1:], reduction="sum").item()
            tokens += piece.numel() - 1
            scored_bytes += len(tokenizer.decode(piece[1:].tolist()).encode("utf-8"))
    return nats / tokens, nats / math.log(2) / scored_bytes, tokens

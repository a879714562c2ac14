"""The sparse reproduction's short-to-long half, on a tiny byte-level model with every block switchable.

1. pretrain dense at a short context on Shakespeare windows with byte-level passkey examples mixed in;
2. at a context `long / short` times longer, compare: dense without training, sparse without training, and
   sparse after a brief finetune at the long length in sparse mode (val loss, passkey accuracy);
3. switch the finetuned model back to dense at the short length: its short-context quality should be kept
   (InfLLM-V2's claim that switching back costs nothing, since no parameter was added). The control is the
   same finetune in dense mode: it trains exactly as long, so it tells the sparse mode's effect apart from
   that of the extra training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from minihybrid.config import LayerSpec, ModelConfig
from minihybrid.data import ByteTokenizer, byte_streams, load_shakespeare, passkey, sample_batch
from minihybrid.layers.switchable import set_mode
from minihybrid.train import TrainConfig, accuracy, evaluate
from minihybrid.trained import trained_model

DATA = "shakespeare-passkey"


@dataclass(frozen=True)
class TinySettings:
    model: ModelConfig  # mixer "B" everywhere, max_seq_len = long
    sparse: dict  # the selection sizes of the sparse mode
    short: int
    long: int
    pretrain: TrainConfig  # at the short length, dense
    finetune: TrainConfig  # at the long length, sparse
    text_examples: int  # Shakespeare windows per training pool
    passkey_examples: int  # passkeys per training pool
    test_examples: int  # passkeys per evaluation
    val_windows: int


def scored_everywhere(inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token labels at every position of passkey examples (N, T), not only at the answer: the repeated
    filler and the needle teach the copying that retrieval needs. Scored at the answer alone, the tiny model
    found no key after 400 steps; scored everywhere, it starts to after about 800."""
    return torch.cat([inputs[:, 1:], labels[:, -1:]], 1)


def pools(setup: TinySettings) -> dict:
    """Training pools at the short and long length (Shakespeare windows and passkeys at random depths, scored
    everywhere, shuffled), the val stream, and passkey test sets at both lengths (scored at the answer)."""
    streams = byte_streams("shakespeare", load_shakespeare())
    tokenizer = ByteTokenizer()

    def pool(seq_len: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        text = sample_batch(streams["train"], setup.text_examples, seq_len, g)
        depths = torch.rand(setup.passkey_examples, generator=g).tolist()
        keys = [passkey(1, seq_len, d, tokenizer, seed=seed * 10_000 + i) for i, d in enumerate(depths)]
        inputs = torch.cat([text[0], *(k[0] for k in keys)])
        labels = torch.cat([text[1], *(scored_everywhere(*k) for k in keys)])
        order = torch.randperm(len(inputs), generator=g)
        return inputs[order], labels[order]

    def test(seq_len: int, seed: int):
        parts = [passkey(setup.test_examples // 4, seq_len, d, tokenizer, seed=seed + i)
                 for i, d in enumerate((0.1, 0.4, 0.6, 0.9))]
        return tuple(torch.cat([p[i] for p in parts]) for i in (0, 1))

    return {"short": pool(setup.short, 1), "long": pool(setup.long, 2), "validation": streams["validation"],
            "test short": test(setup.short, 100), "test long": test(setup.long, 200)}


def with_mode(config: ModelConfig, mode: str, sparse: dict) -> ModelConfig:
    return config.with_pattern([LayerSpec("B", {**sparse, "mode": mode})] * config.n_layers)


def measure(model, data: dict, setup: TinySettings, length: str) -> dict:
    """Val loss (nats/byte) over Shakespeare windows and passkey accuracy (all digits) at one length."""
    n = setup.short if length == "short" else setup.long
    nll = evaluate(model, data["validation"], 4, n, max_batches=max(1, setup.val_windows // 4))
    return {"loss": nll, "ppl": math.exp(nll),
            "passkey": accuracy(model, data[f"test {length}"], batch_size=8, per_example=True)}


MODELS = {  # row "model" -> what it is
    "pretrained": "pretrained (short, dense)",
    "sparse-finetuned": "finetuned (long, sparse)",
    "dense-finetuned": "finetuned (long, dense): the control",
}


@torch.no_grad()
def _measure_modes(model, data, setup, rows, name):
    for mode, length in (("dense", "long"), ("sparse", "long"), ("dense", "short")):
        set_mode(model, mode)
        rows.append({"model": name, "mode": mode, "length": length, **measure(model, data, setup, length)})


def short_to_long(setup: TinySettings, seed: int = 0) -> tuple[list[dict], dict]:
    """Rows {model, mode, length, loss, ppl, passkey} for the pretrained model and its two finetunes (sparse,
    and dense as the control with the same extra training), and the training histories by name, the finetunes'
    steps counted on from the end of pretraining."""
    data = pools(setup)
    dense = with_mode(setup.model, "dense", setup.sparse)
    pre, pre_history = trained_model(dense, replace(setup.pretrain, seed=seed),
                                     {"train": data["short"], "validation": data["validation"]}, DATA)
    rows: list[dict] = []
    _measure_modes(pre, data, setup, rows, "pretrained")
    histories = {MODELS["pretrained"]: pre_history}
    for mode in ("sparse", "dense"):
        fine, history = trained_model(with_mode(setup.model, mode, setup.sparse),
                                      replace(setup.finetune, seed=seed),
                                      {"train": data["long"], "validation": data["validation"]}, DATA,
                                      start_from=pre)
        _measure_modes(fine, data, setup, rows, f"{mode}-finetuned")
        offset = setup.pretrain.steps
        histories[MODELS[f"{mode}-finetuned"]] = replace(history, steps=[s + offset for s in history.steps],
                                                         eval_steps=[s + offset for s in history.eval_steps])
    return rows, histories

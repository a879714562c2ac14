"""Trained models cached on disk, so a notebook and the report reuse one training run instead of two.

A run is keyed by everything that determines its weights: the model config, the training config (its seed
included; not its progress bar or checkpoint path), the token streams' content and the library version.
The checkpoint lives in `<cache>/checkpoints/<data>-<key>.safetensors` (see data/fetch.py for <cache>;
`data` only names the file for a human) and
is written at every evaluation, so an interrupted run resumes where it stopped. `retrain=True`, or the
environment variable MINIHYBRID_RETRAIN=1 (`reproduce --retrain`), trains from scratch again.
Training runs on `device`, by default MINIHYBRID_DEVICE (`reproduce --device cuda`; cpu when unset); the
model comes back on the CPU either way, so what follows it (Numba kernels, timings) is unchanged. The device
is not part of the key: a checkpoint trained on a GPU serves a CPU run, and back.

    model, history = trained_model(ModelConfig.from_name("tiny"), TrainConfig(steps=1500), streams,
                                   data="shakespeare-bytes")
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import torch

import minihybrid
from minihybrid import runtime
from minihybrid.config import ModelConfig
from minihybrid.data import cache_dir
from minihybrid.model import HybridLM
from minihybrid.train import TrainConfig, TrainHistory, train


def cache_key(model_config: ModelConfig, train_config: TrainConfig, streams: dict[str, torch.Tensor],
              start_from: HybridLM | None = None) -> str:
    """16 hex digits of a hash over the model config, the training config, the streams, the version and the
    starting weights (when a run continues from a trained model)."""
    model = {k: v for k, v in dataclasses.asdict(model_config).items() if k != "pattern"}  # layers resolve it
    run = {k: v for k, v in dataclasses.asdict(train_config).items() if k not in ("checkpoint", "progress")}
    blob = json.dumps({"model": model, "train": run, "version": minihybrid.__version__}, sort_keys=True,
                      default=str)
    digest = hashlib.sha256(blob.encode())
    for name in sorted(streams):  # ~10 ms for Shakespeare's 5 MB
        digest.update(name.encode())
        for tensor in streams[name] if isinstance(streams[name], tuple) else (streams[name],):
            digest.update(tensor.contiguous().numpy().tobytes())
    for name, tensor in sorted((start_from.state_dict() if start_from is not None else {}).items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def checkpoint_path(model_config: ModelConfig, train_config: TrainConfig, streams: dict[str, torch.Tensor],
                    data: str, start_from: HybridLM | None = None) -> Path:
    if not isinstance(data, str) or not data.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"data must name the training data with letters, digits, '-' or '_', got {data!r}")
    key = cache_key(model_config, train_config, streams, start_from)
    return cache_dir() / "checkpoints" / f"{data}-{key}.safetensors"


def retrain_requested() -> bool:
    return os.environ.get("MINIHYBRID_RETRAIN", "0") not in ("", "0", "false", "False")


def trained_model(model_config: ModelConfig, train_config: TrainConfig, streams: dict[str, torch.Tensor],
                  data: str, retrain: bool | None = None, on_eval=None,
                  start_from: HybridLM | None = None, device=None) -> tuple[HybridLM, TrainHistory]:
    """A HybridLM(model_config) trained by `train` on streams["train"] (val: streams["validation"]).

    Loaded from the cache when this exact run finished before (then on_eval is not called); otherwise
    trained (resuming a partial checkpoint) and cached. The model is initialised from train_config.seed, or
    continues from the weights of `start_from` (a finetune; its config may differ in mixer options only).
    device: 'cpu' or 'cuda' to train on (None: runtime.device(), from MINIHYBRID_DEVICE); the model is
    returned on the CPU.
    """
    if not {"train", "validation"} <= set(streams):
        raise ValueError(f"streams must have 'train' and 'validation' token streams, got {sorted(streams)}")
    device = runtime.device() if device is None else device  # train checks it
    path = checkpoint_path(model_config, train_config, streams, data, start_from)
    retrain = retrain_requested() if retrain is None else retrain
    if retrain:
        path.unlink(missing_ok=True)  # under torchrun, every rank tries
    torch.manual_seed(train_config.seed)
    model = HybridLM(model_config)
    if start_from is not None:
        model.load_state_dict(start_from.state_dict())
    cfg = dataclasses.replace(train_config, checkpoint=str(path))
    history = train(model, streams["train"], streams["validation"], cfg, on_eval=on_eval, resume=True,
                    device=device)
    return model.cpu().eval(), history

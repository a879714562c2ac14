"""Data-parallel training under torchrun's environment (2 CPU processes, gloo) and the training device.

Two ranks, each on half of every global batch, follow one process's loss curve on the same global batch
and seed. Not bit for bit: the ranks' gradients are averaged by an all-reduce and the loss sums split in
two, so float32 sums are rounded in another order (measured: ~1e-7 relative on the loss, well inside
RTOL); AdamW then turns those roundings into weight differences of the same order (ATOL).
"""

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from loopback import free_port
from test_train_generate import periodic_stream, small_model

from minihybrid import distributed, runtime
from minihybrid.train import TrainConfig, load_checkpoint, train

RTOL = 1e-5  # relative, on train and val losses
ATOL = 1e-5  # absolute, on the weights after 10 AdamW steps
STREAMS = periodic_stream(3000, 11), periodic_stream(400, 11)
WORLD = 2
ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 120  # seconds for both ranks (about 10 on two busy cores)


def config(tmp, name: str, **kw) -> TrainConfig:
    return TrainConfig(steps=10, batch_size=4, seq_len=16, lr=5e-3, warmup_steps=2, eval_every=5,
                       eval_batches=1, progress=False, checkpoint=str(tmp / f"{name}.safetensors"), **kw)


def keep_step_5(cfg: TrainConfig):
    """An on_eval that copies the checkpoint written at step 5 to <name>5.safetensors."""
    def copy(history):
        if history.eval_steps[-1] == 5:
            shutil.copy(cfg.checkpoint, cfg.checkpoint.replace(".safetensors", "5.safetensors"))
    return copy


def rank_main(rank: int, port: int, tmp) -> None:
    """A rank as torchrun starts it: trains from scratch ('ddp'), then resumes a one-process checkpoint."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    cfg = config(tmp, "ddp")
    history = train(small_model(), *STREAMS, cfg, on_eval=keep_step_5(cfg))
    (tmp / f"history{rank}.json").write_text(json.dumps(asdict(history)))
    train(small_model(seed=123), *STREAMS, config(tmp, "resumed"))  # every rank loads resumed.safetensors
    distributed.destroy()


def weights(path):
    model = small_model(seed=99)
    load_checkpoint(path, model)
    return model.state_dict()


def assert_same_weights(a, b):
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=ATOL, msg=name)


def test_two_processes_follow_one_and_their_checkpoints_resume_either_way(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # inherited by the spawned ranks
    cfg = config(tmp_path, "single")
    single = train(small_model(), *STREAMS, cfg, on_eval=keep_step_5(cfg))
    shutil.copy(tmp_path / "single5.safetensors", tmp_path / "resumed.safetensors")

    context = mp.start_processes(rank_main, args=(free_port(), tmp_path), nprocs=WORLD, join=False)
    deadline = time.monotonic() + DEADLINE
    while not context.join(timeout=1):  # raises if a rank failed (and ends the other)
        if time.monotonic() > deadline:  # a hung collective waits 30 min for gloo's own timeout
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {WORLD} ranks did not finish in {DEADLINE} s")

    ranks = [json.loads((tmp_path / f"history{r}.json").read_text()) for r in range(WORLD)]
    for history in ranks:  # the train loss is all-reduced, the val loss broadcast from rank 0
        history.pop("tokens_per_second")
    ddp = ranks[0]
    assert ranks[1] == ddp and ddp["steps"] == single.steps and ddp["eval_steps"] == single.eval_steps
    for curve in ("train_loss", "val_loss"):
        torch.testing.assert_close(torch.tensor(ddp[curve]), torch.tensor(getattr(single, curve)), rtol=RTOL,
                                   atol=0, msg=curve)
    reference = weights(tmp_path / "single.safetensors")
    assert_same_weights(weights(tmp_path / "ddp.safetensors"), reference)
    assert_same_weights(weights(tmp_path / "resumed.safetensors"), reference)  # one process -> DDP

    shutil.copy(tmp_path / "ddp5.safetensors", tmp_path / "back.safetensors")  # DDP -> one process
    back = small_model(seed=123)
    history = train(back, *STREAMS, config(tmp_path, "back"))
    assert history.eval_steps == [5, 10]
    assert_same_weights(back.state_dict(), reference)


def test_the_command_line_trains_under_torchrun_and_prints_once(tmp_path):
    ckpt = tmp_path / "cli.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={WORLD}",
                f"--master_port={free_port()}"]
    command = [*torchrun, "-m", "minihybrid", "train", "--steps", "2", "--d-model", "32", "--heads", "2",
               "--pattern", "AS", "--seq-len", "32", "--batch-size", "4", "--checkpoint", str(ckpt)]
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=DEADLINE,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("val loss") == 1 and ckpt.exists()


def test_the_global_batch_must_split_over_the_processes(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    message = r"TrainConfig.batch_size=4 \(the global batch\) must be a multiple of the 3 processes"
    with pytest.raises(ValueError, match=message):
        train(small_model(), *STREAMS, TrainConfig(steps=1, batch_size=4, seq_len=16, progress=False))


def test_runtime_device_reads_the_environment(monkeypatch):
    monkeypatch.delenv("MINIHYBRID_DEVICE", raising=False)
    assert runtime.device() == torch.device("cpu")
    monkeypatch.setenv("MINIHYBRID_DEVICE", "cpu")
    assert runtime.device() == torch.device("cpu")
    monkeypatch.setenv("MINIHYBRID_DEVICE", "tpu")
    with pytest.raises(ValueError, match="MINIHYBRID_DEVICE must be one of cpu, cuda, got 'tpu'"):
        runtime.device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_cuda_without_a_gpu_says_how_to_fix_it(monkeypatch, capsys):
    monkeypatch.setenv("MINIHYBRID_DEVICE", "cuda")
    with pytest.raises(ValueError, match="MINIHYBRID_DEVICE is cuda, but torch .* sees no GPU: use cpu"):
        runtime.device()
    with pytest.raises(ValueError, match="device is cuda, but torch .* sees no GPU"):
        train(small_model(), *STREAMS, TrainConfig(steps=1, batch_size=4, seq_len=16), device="cuda")
    from minihybrid.__main__ import main

    with pytest.raises(SystemExit):
        main(["train", "--device", "cuda", "--steps", "1"])
    assert "device is cuda, but torch" in capsys.readouterr().err


def test_training_on_a_named_device_moves_the_model_there():
    model = small_model()
    with pytest.raises(ValueError, match="device must be one of cpu, cuda, got 'gpu'"):
        train(model, *STREAMS, TrainConfig(steps=1, batch_size=4, seq_len=16), device="gpu")
    history = train(model, *STREAMS, TrainConfig(steps=2, batch_size=4, seq_len=16, eval_every=2,
                                                 eval_batches=1, progress=False), device="cpu")
    assert len(history.train_loss) == 2 and next(model.parameters()).device.type == "cpu"

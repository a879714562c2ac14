"""The command line, run as a user would: python -m minihybrid ..."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, timeout=600):
    env = {**os.environ, "MINIHYBRID_FAST": "1"}
    return subprocess.run([sys.executable, "-m", "minihybrid", *args], cwd=ROOT, env=env, capture_output=True,
                          check=False, text=True, timeout=timeout)


def test_doctor_prints_the_environment():
    out = cli("doctor")
    assert out.returncode == 0, out.stderr
    assert "torch" in out.stdout and "numba" in out.stdout and "cuda" in out.stdout


def test_train_saves_a_checkpoint_and_reports_val_loss(tmp_path):
    ckpt = tmp_path / "tiny.safetensors"
    out = cli("train", "--steps", "4", "--d-model", "32", "--heads", "2", "--pattern", "AS",
              "--seq-len", "32", "--batch-size", "2", "--checkpoint", str(ckpt))
    assert out.returncode == 0, out.stderr
    assert "val loss" in out.stdout and ckpt.exists()


def test_generate_with_smollm2():
    out = cli("generate", "The capital of France is", "--max-new-tokens", "4")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() and "tokens/s" in out.stderr


def test_reproduce_fast_writes_the_report(tmp_path):
    out = cli("reproduce", "--fast", "--only", "baseline", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr[-2000:]
    report = (tmp_path / "REPORT.md").read_text()
    assert "## Baseline" in report and "ratio minihybrid / transformers" in report
    assert (tmp_path / "figures" / "baseline_loss.png").stat().st_size > 1000


@pytest.mark.parametrize("args,message", [
    (("reproduce", "--only", "nosuch"), "unknown reproduction 'nosuch'; registered: baseline"),
    (("train", "--pattern", "AXA", "--steps", "1"), "unknown mixer letter 'X'"),
])
def test_bad_arguments_fail_with_a_clear_message(args, message, tmp_path):
    out = cli(*args, "--out", str(tmp_path)) if args[0] == "reproduce" else cli(*args)
    assert out.returncode != 0 and message in out.stderr


def test_fast_mode_from_the_environment_never_writes_to_results(monkeypatch):
    from minihybrid.__main__ import main
    from minihybrid.reproduce import report

    calls = []
    monkeypatch.setattr(report, "run_all", lambda out, only, seed: calls.append(out))
    monkeypatch.setenv("MINIHYBRID_FAST", "1")  # a workshop shell, without --fast on the command line
    main(["reproduce", "--only", "baseline"])
    monkeypatch.setenv("MINIHYBRID_FAST", "0")
    main(["reproduce", "--only", "baseline"])
    assert calls == [Path("build/report-fast"), Path("results")]


def test_reproduce_device_sets_the_training_device(monkeypatch):
    from minihybrid.__main__ import main
    from minihybrid.reproduce import report

    monkeypatch.setattr(report, "run_all", lambda out, only, seed: None)
    monkeypatch.setenv("MINIHYBRID_DEVICE", "")  # restored after the test; main sets it
    main(["reproduce", "--only", "baseline", "--device", "cpu"])
    assert os.environ["MINIHYBRID_DEVICE"] == "cpu"

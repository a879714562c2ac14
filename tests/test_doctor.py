"""doctor on this machine's healthy setup and on a broken one; the checkpoints `make workshop` records."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minihybrid import ModelConfig, doctor, workshop
from minihybrid.data import DownloadError, shakespeare_dir, smollm2_gguf_path
from minihybrid.doctor import Check
from minihybrid.reproduce import REPRODUCTIONS
from minihybrid.runtime import fast_mode
from minihybrid.train import TrainConfig
from minihybrid.trained import trained_model

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"OK   \S.*|(WARN|FAIL) [^:]+: .+ -> fix: .+")  # every line but the closing one
DOWNLOAD_VARIABLES = ("MINIHYBRID_SMOLLM2_GGUF", "MINIHYBRID_SHAKESPEARE_DIR")


def report(capsys) -> tuple[int, list[str]]:
    """doctor's exit status and lines."""
    status = doctor.main()
    return status, capsys.readouterr().out.splitlines()


@pytest.fixture(scope="module")
def downloads():
    try:
        smollm2_gguf_path(), shakespeare_dir()
    except DownloadError as e:
        if os.environ.get("MINIHYBRID_REQUIRE_DOWNLOADS") == "1":  # set by the test run: never skip silently
            raise
        pytest.skip(f"the downloads are not available: {e}")


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIHYBRID_CACHE", str(tmp_path))
    for name in DOWNLOAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_a_healthy_machine_is_ready_offline(downloads, capsys):
    status, lines = report(capsys)
    *checks, closing = lines
    assert all(LINE.fullmatch(line) for line in checks), lines
    assert not [line for line in checks if line.startswith("FAIL")] and status == 0
    ok = {line[5:].split(":")[0] for line in checks if line.startswith("OK")}
    assert {"python", "packages", "numba", "SmolLM2 GGUF", "Shakespeare", "disk"} <= ok, lines
    assert closing.startswith("ready offline")


def test_a_broken_setup_fails_with_a_fix_for_each_problem(empty_cache, monkeypatch, capsys):
    installed = doctor.metadata.version
    pin = next(r for r in doctor.metadata.requires("minihybrid") if r.startswith("torch=="))  # torch==2.13.0
    monkeypatch.setattr(doctor.metadata, "version", lambda n: "2.12.0" if n == "torch" else installed(n))
    status, lines = report(capsys)
    assert status == 1 and all(LINE.fullmatch(line) for line in lines[:-1]), lines
    failed = {line[5:].split(":")[0]: line for line in lines if line.startswith("FAIL")}
    assert set(failed) == {"torch", "SmolLM2 GGUF", "Shakespeare"}, lines
    assert f"2.12.0 installed, pinned {pin[5:]}" in failed["torch"]
    assert f"pip install {pin}" in failed["torch"]
    assert str(empty_cache / "smollm2") in failed["SmolLM2 GGUF"]
    assert failed["Shakespeare"].endswith("-m minihybrid workshop --checkpoints none")
    assert lines[-1] == "not ready offline: torch, SmolLM2 GGUF, Shakespeare (FAIL lines above)"


def test_the_command_exits_non_zero_when_a_check_fails(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in DOWNLOAD_VARIABLES}
    out = subprocess.run([sys.executable, "-m", "minihybrid", "doctor"], cwd=ROOT, capture_output=True,
                         text=True, check=False, timeout=300, env={**env, "MINIHYBRID_CACHE": str(tmp_path)})
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL SmolLM2 GGUF" in out.stdout and out.stdout.splitlines()[-1].startswith("not ready offline")


def test_a_warning_or_failure_needs_a_reason_and_a_fix():
    assert Check("WARN", "x", "why", "fix").line() == "WARN x: why -> fix: fix"
    for bad in (("FAIL", "x", "why"), ("WARN", "x", "", "fix"), ("MAYBE", "x")):
        with pytest.raises(ValueError):
            Check(*bad)


def test_every_reproduction_says_what_its_notebook_trains():
    assert set(REPRODUCTIONS) <= set(workshop.NOTEBOOK_MODELS), "add the new module to NOTEBOOK_MODELS"


def test_doctor_checks_the_checkpoints_the_workshop_recorded(empty_cache, monkeypatch):
    modes = []

    def tiny_notebook():
        modes.append(fast_mode())
        config = ModelConfig(vocab_size=16, d_model=16, n_heads=2, pattern="A", max_seq_len=32)
        streams = {"train": torch.arange(400) % 7, "validation": torch.arange(100) % 7}
        run = TrainConfig(steps=2, batch_size=2, seq_len=8, eval_every=2, eval_batches=1, progress=False)
        trained_model(config, run, streams, "periodic")

    monkeypatch.setattr(workshop, "NOTEBOOK_MODELS", {"tiny": tiny_notebook, "untrained": None})
    monkeypatch.setenv("MINIHYBRID_FAST", "0")  # the caller is in full mode (the test run sets fast mode)
    workshop.build_checkpoints(["fast"])
    assert modes == [True] and not fast_mode()  # built in fast mode; the caller's mode restored
    (name,) = workshop.read_manifest()["modes"]["fast"]["tiny"]
    path = empty_cache / "checkpoints" / name

    def checks():
        return {c.what: c for c in doctor.check_checkpoints()}

    fast, full = checks()["fast-mode checkpoints"], checks()["full-mode checkpoints"]
    assert fast.level == "OK" and "1 for the notebooks (tiny 1)" in fast.detail
    assert full.level == "WARN" and "not pre-built for tiny" in full.detail and full.fix == "make workshop"
    path.write_bytes(b"not a safetensors file")
    broken = checks()["fast-mode checkpoints"]
    assert broken.level == "FAIL" and broken.fix == f"rm {path} && make workshop FAST=1"
    path.unlink()
    assert "is missing" in checks()["fast-mode checkpoints"].detail
    monkeypatch.setattr(workshop, "library_fingerprint", lambda: "another version")
    assert "another version of the library" in checks()["fast-mode checkpoints"].detail

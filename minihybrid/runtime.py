"""What this run is: fast or full mode, the training device, and the machine/software it runs on.

Fast mode (env var MINIHYBRID_FAST=1, or `--fast`) swaps in tiny configurations so every notebook and
reproduction finishes in minutes; CI runs the notebooks that way. The training device (env var
MINIHYBRID_DEVICE=cpu|cuda, or `--device`) is where `trained_model` trains; cpu by default.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata


def fast_mode() -> bool:
    return os.environ.get("MINIHYBRID_FAST", "0") not in ("", "0", "false", "False")


def pick(fast, full):
    """`fast` in fast mode, else `full` (for sizes, step counts and token budgets)."""
    return fast if fast_mode() else full


DEVICES = ("cpu", "cuda")


def check_device(name, source: str = "device"):
    """torch.device for 'cpu' or 'cuda' (a str or a torch.device of those types); ValueError, saying how to
    fix it, for another name or for cuda when this torch sees no GPU. `source` names the setting."""
    import torch

    kind = name.type if isinstance(name, torch.device) else name
    if kind not in DEVICES:
        raise ValueError(f"{source} must be one of {', '.join(DEVICES)}, got {name!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{source} is cuda, but torch {torch.__version__} sees no GPU: use cpu, or "
                         "install a CUDA build of torch on a machine with an NVIDIA GPU (see: python -m "
                         "minihybrid doctor)")
    return torch.device(name)


def device():
    """The training device named by env var MINIHYBRID_DEVICE (cpu when unset), as a torch.device."""
    return check_device(os.environ.get("MINIHYBRID_DEVICE") or "cpu", "MINIHYBRID_DEVICE")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def simulator_enabled() -> bool:
    """True when NUMBA_ENABLE_CUDASIM=1: numba.cuda runs kernels on the CPU, in its simulator."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def cuda_status() -> str:
    """'GPU: <name>', 'numba.cuda simulator' (NUMBA_ENABLE_CUDASIM=1) or 'none'."""
    if simulator_enabled():
        return "numba.cuda simulator"
    import torch

    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    return "none"


def environment_info() -> dict[str, str]:
    """Versions, threads and accelerators, for reports and the notebook's environment check."""
    import numba
    import torch

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu cores": str(os.cpu_count()),
        "torch": torch.__version__,
        "torch threads": str(torch.get_num_threads()),
        "numba": numba.__version__,
        "numba threads": str(numba.config.NUMBA_NUM_THREADS),
        "numpy": _version("numpy"),
        "transformers": _version("transformers"),
        "cuda": cuda_status(),
        "fast mode": str(fast_mode()),
    }

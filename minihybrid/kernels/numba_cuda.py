"""numba.cuda for the "cuda" backend: whether it can run here, and launching its kernels on torch tensors.

numba.cuda is imported only when first needed, so the library imports without it. It runs on a real GPU, or,
with NUMBA_ENABLE_CUDASIM=1 (set before numba is imported), in numba's simulator on the CPU:
    real GPU    CUDA tensors are handed to the kernel zero-copy (``cuda.as_cuda_array``) and it runs on
                torch's current stream
    simulator   CPU tensors are copied to simulated device arrays, and the outputs copied back
A kernel module (kernels/<op>/cuda.py) imports ``from numba import cuda`` at its top and is itself imported
only when the "cuda" backend runs: the simulator runs a kernel by swapping the globals of its module that
are numba.cuda for a fake module, so kernels must reach ``cuda`` through a module global.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from minihybrid.runtime import simulator_enabled


def tensor_device() -> str:
    """The device type of the tensors the "cuda" backend takes: "cpu" under the simulator, else "cuda"."""
    return "cpu" if simulator_enabled() else "cuda"


@functools.cache
def available() -> bool:
    """True when numba.cuda can run kernels here (a GPU, or the simulator)."""
    if simulator_enabled():
        return True
    try:
        from numba import cuda
    except ImportError:
        return False
    return cuda.is_available()


def launch(kernel, grid: tuple[int, ...], block: int, inputs: Sequence[torch.Tensor],
           outputs: Sequence[torch.Tensor], *scalars) -> None:
    """kernel[grid, block](*inputs, *outputs, *scalars) on checked contiguous tensors; fills ``outputs``."""
    from numba import cuda

    if simulator_enabled():
        arrays = [cuda.to_device(t.detach().numpy()) for t in (*inputs, *outputs)]
        kernel[grid, block](*arrays, *scalars)
        for t, array in zip(outputs, arrays[len(inputs):]):
            array.copy_to_host(t.detach().numpy())
        return
    device = inputs[0].device
    with cuda.gpus[device.index]:
        stream = cuda.external_stream(torch.cuda.current_stream(device).cuda_stream)
        arrays = [cuda.as_cuda_array(t.detach()) for t in (*inputs, *outputs)]
        kernel[grid, block, stream](*arrays, *scalars)

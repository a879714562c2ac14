"""Running Numba CPU kernels (the "numba" backend) on torch tensors, with BLAS kept single-threaded.

Tensors are passed as zero-copy numpy views, so a kernel writes its output straight into the torch tensor.
Numba's ``np.dot`` calls scipy's OpenBLAS; inside a ``prange`` loop a multi-threaded OpenBLAS would start its
own threads for every small matmul (oversubscribing the cores, and warning about the OpenMP loop), so
kernels run with OpenBLAS set to one thread and restored afterwards.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import os

import torch


@functools.cache
def _scipy_openblas():
    """(get, set) thread-count functions of the OpenBLAS bundled with scipy, or None if not found."""
    import scipy

    root = os.path.dirname(scipy.__file__)
    for path in glob.glob(os.path.join(root, "..", "scipy.libs", "*openblas*")) + glob.glob(
            os.path.join(root, ".dylibs", "*openblas*")):
        lib = ctypes.CDLL(path)
        for prefix in ("scipy_openblas", "openblas"):
            if hasattr(lib, prefix + "_set_num_threads"):
                return getattr(lib, prefix + "_get_num_threads"), getattr(lib, prefix + "_set_num_threads")
    return None


@contextlib.contextmanager
def single_threaded_blas():
    """Run the block with scipy's OpenBLAS on one thread (a no-op where it is not found)."""
    funcs = _scipy_openblas()
    if funcs is None:
        yield
        return
    get, set_ = funcs
    before = get()
    set_(1)
    try:
        yield
    finally:
        set_(before)


def run(kernel, *args) -> None:
    """kernel(*args) with torch tensors among args passed as numpy views and BLAS single-threaded."""
    arrays = [a.detach().numpy() if isinstance(a, torch.Tensor) else a for a in args]
    with single_threaded_blas():
        kernel(*arrays)

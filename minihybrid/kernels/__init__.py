"""Kernels, one folder per op: reference.py (readable PyTorch spec), a "torch" fast path, cpu.py (Numba),
cuda.py (numba.cuda), and __init__.py with the op's own shape and option checks.

The plumbing every op shares lives here once: dispatch.py (backend names, dtype tables, tensor checks, the
"auto" choice), numba_cpu.py (running Numba kernels on torch tensors, BLAS threads) and numba_cuda.py (the
lazy numba.cuda import, simulator handling, launching on torch's stream).
"""

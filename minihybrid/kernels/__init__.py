"""Kernels: PyTorch reference, Numba CPU, numba.cuda; one folder per op."""

"""Block-sparse attention: each query attends to the key blocks listed for it (InfLLM-V2's sparse stage).

Glossary of tensor dimensions:
    B    batch size
    Hq   query heads; Hkv key/value heads; G = Hq // Hkv query heads share one kv head and one block list
    Tq   query positions (new tokens), aligned to the END of the keys: query i sits at Tk - Tq + i
    Tk   key/value positions (cached + new tokens)
    D    head dimension
    S    listed blocks per query; block j holds keys [block_size j, block_size (j + 1))

q is (B, Hq, Tq, D), k and v are (B, Hkv, Tk, D), blocks is (B, Hkv, Tq, S) int32 or int64 with entries in
-1..NB-1 (-1 = no block; NB = ceil(Tk / block_size)); the output is (B, Hq, Tq, D). One softmax runs over the
union of a row's blocks, causal at the token level; a row that sees no key outputs zeros. Which blocks to
list is InfLLM-V2's selection, ``select.py`` (sparse_blocks does every step).

Backends (names and the "auto" rule: ``kernels/dispatch.py``; every one is tested against the reference):
    "reference"  reference.py, dense scores under the block mask; any float dtype, autograd
    "numba"      cpu.py, reads only the selected blocks; float32/float64, inference only
    "cuda"       cuda.py, numba.cuda kernel (or its simulator); float32, D <= 128, inference only
    "auto"       "numba" for CPU tensors it takes, "cuda" for CUDA tensors, else "reference"
"""

from __future__ import annotations

import numbers

import torch

from minihybrid.checks import check_int
from minihybrid.kernels.block_sparse.reference import block_mask, block_sparse_reference
from minihybrid.kernels.dispatch import FLOAT_DTYPES, check_tensors, lazy, resolve_backend, run

__all__ = ["BACKENDS", "DTYPES", "block_mask", "block_sparse_attention", "block_sparse_reference"]

DTYPES = {  # backend -> supported dtypes
    "reference": FLOAT_DTYPES,
    "numba": (torch.float32, torch.float64),
    "cuda": (torch.float32,),
}
BACKENDS = ("auto", *DTYPES)
CUDA_MAX_HEAD_DIM = 128  # cuda.py keeps a query row and its accumulator in per-thread local arrays
LIMITS = {"cuda": lambda t: (None if t["q"].shape[-1] <= CUDA_MAX_HEAD_DIM
                             else f"head dim D <= {CUDA_MAX_HEAD_DIM} only, got {t['q'].shape[-1]}")}
_KERNELS = {
    "reference": block_sparse_reference,
    "numba": lazy(f"{__name__}.cpu", "block_sparse_cpu"),
    "cuda": lazy(f"{__name__}.cuda", "block_sparse_cuda"),
}


def _check_shapes(q, k, v, blocks, block_size) -> None:
    (b, hq, tq, d), (bk, hkv, tk, dk) = q.shape, k.shape
    if k.shape != v.shape:
        raise ValueError(f"k and v shapes differ: {tuple(k.shape)} vs {tuple(v.shape)}")
    if bk != b or dk != d:
        raise ValueError(f"q {tuple(q.shape)} and k/v {tuple(k.shape)} must share batch B and head dim D")
    if hq % hkv:
        raise ValueError(f"query heads Hq={hq} must be a multiple of kv heads Hkv={hkv}")
    if tq > tk:
        raise ValueError(f"more queries than keys (Tq={tq} > Tk={tk}); queries align to the end of the keys")
    if not isinstance(blocks, torch.Tensor):
        raise TypeError(f"blocks must be a torch.Tensor, got {type(blocks).__name__}")
    if blocks.dim() != 4 or blocks.shape[:3] != (b, hkv, tq) or blocks.shape[3] == 0:
        raise ValueError(f"blocks must be (B, Hkv, Tq, S) = ({b}, {hkv}, {tq}, S >= 1), "
                         f"got {tuple(blocks.shape)}")
    if blocks.dtype not in (torch.int32, torch.int64) or blocks.device != q.device:
        raise ValueError(f"blocks must be int32 or int64 on {q.device}, "
                         f"got {blocks.dtype} on {blocks.device}")
    n_blocks = -(-tk // block_size)
    low, high = (x.item() for x in torch.aminmax(blocks))
    if low < -1 or high >= n_blocks:
        raise ValueError(f"block index {low if low < -1 else high} is outside -1..{n_blocks - 1} "
                         f"({tk} keys in blocks of {block_size})")


def block_sparse_attention(q, k, v, blocks, *, block_size: int, scale: float | None = None,
                           backend: str = "auto", out: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T * scale + block mask) v for q (B, Hq, Tq, D), k/v (B, Hkv, Tk, D) and the blocks
    (B, Hkv, Tq, S) of each query -> (B, Hq, Tq, D). scale defaults to 1/sqrt(D); fills ``out`` if given."""
    check_tensors(q=(q, "B Hq Tq D"), k=(k, "B Hkv Tk D"), v=(v, "B Hkv Tk D"))
    check_int("block_size", block_size)
    _check_shapes(q, k, v, blocks, block_size)
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, numbers.Real)):
        raise TypeError(f"scale must be None or a real number, got {scale!r}")
    backend = resolve_backend(backend, DTYPES, {"q": q, "k": k, "v": v}, out, LIMITS)
    if backend != "reference":
        blocks = blocks.to(torch.int32).contiguous()
    return run(backend, _KERNELS, (q, k, v, blocks), out, block_size=block_size, scale=scale)

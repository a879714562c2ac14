"""InfLLM-V2's dense/sparse switchable attention (arXiv 2509.24663): mixer "B".

Dimensions: B batch, T new tokens, Tk keys (cache + new), Hq query / Hkv key-value heads, D head dim,
C compressed keys, S selected blocks per query (kernels/block_sparse/select.py).

The block is standard attention — the same W_Q, W_K, W_V, W_O as mixer "A", so any trained attention model
(SmolLM2 included: `load_smollm2(pattern=[LayerSpec("B", PRESETS["small"])] * 30)`) runs sparse without
retraining and without one extra parameter. Per call it picks:
    dense   while the total context Tk (cache + new tokens) is below `dense_len`, or with mode="dense"
    sparse  above it, or with mode="sparse": each query attends to the union of the first `init_blocks`
            blocks, its local window (its own block and the `window // block_size` before it) and the `topk`
            best-scoring other earlier blocks, chosen per kv head from compressed keys (select.py)
When the blocks a query may take cover every earlier block (short contexts), sparse equals dense exactly, so
dense runs. The decode cache keeps the compressed keys beside the KV cache and adds a window each time
`stride` more keys complete one (its tail is the cache's keys after the last window); a conversation that
crosses `dense_len` while decoding builds them all then. Sizes are options with the paper's defaults;
PRESETS holds those and a small preset for 2K-64K tokens on a CPU.
"""

from __future__ import annotations

import torch

from minihybrid.checks import check_int
from minihybrid.kernels.block_sparse import BACKENDS as SPARSE_BACKENDS
from minihybrid.kernels.block_sparse import block_sparse_attention
from minihybrid.kernels.block_sparse.select import (
    block_scores,
    blocks_per_query,
    check_sizes,
    compress_keys,
    n_compressed,
    select_blocks,
    sparse_blocks,
)
from minihybrid.layers import register
from minihybrid.layers.attention import Attention
from minihybrid.layers.cache import KVCache

MODES = ("auto", "dense", "sparse")
SIZE_NAMES = ("kernel_size", "stride", "block_size", "init_blocks", "window", "topk")  # of block selection
PRESETS = {
    "paper": {"kernel_size": 32, "stride": 16, "block_size": 64, "init_blocks": 1, "window": 2048, "topk": 64,
              "dense_len": 8192},
    "small": {"kernel_size": 32, "stride": 16, "block_size": 64, "init_blocks": 1, "window": 512, "topk": 16,
              "dense_len": 4096},
}


class SparseKVCache(KVCache):
    """A full KV cache plus the compressed keys (B, Hkv, C, D) of the keys it holds, built lazily."""

    def __init__(self, batch, n_kv_heads, head_dim, max_len, *, kernel_size, stride, dtype=torch.float32,
                 device=None):
        super().__init__(batch, n_kv_heads, head_dim, max_len, dtype=dtype, device=device)
        self.kernel_size, self.stride = kernel_size, stride
        slots = n_compressed(max_len, kernel_size, stride)
        self.kc = torch.zeros(batch, n_kv_heads, slots, head_dim, dtype=dtype, device=device)
        self.n_kc = 0  # windows built so far, all over keys the cache holds

    @property
    def nbytes(self) -> int:
        return super().nbytes + self.kc.nbytes

    def compressed_keys(self) -> torch.Tensor:
        """(B, Hkv, C, D): every full window of the keys 0..length-1; builds the ones not built yet."""
        c = n_compressed(self.length, self.kernel_size, self.stride)
        if c > self.n_kc:
            first = self.n_kc * self.stride  # the new windows' keys start here
            keys = self.k[:, :, first:(c - 1) * self.stride + self.kernel_size]
            self.kc[:, :, self.n_kc:c] = compress_keys(keys, self.kernel_size, self.stride)
            self.n_kc = c
        return self.kc[:, :, :c]

    def rollback(self, pos: int) -> None:
        super().rollback(pos)
        self.n_kc = min(self.n_kc, n_compressed(pos, self.kernel_size, self.stride))


@register("B")
class SwitchableAttention(Attention):
    """Attention that turns block-sparse above `dense_len` tokens of context, on the same weights (InfLLM-V2).

    Options (paper defaults): kernel_size 32 and stride 16 (compressed keys), block_size 64, init_blocks 1,
    window 2048 (local tokens, whole blocks), topk 64 (extra blocks), dense_len 8192, mode "auto".
    """

    def __init__(self, config, layer_idx: int, kernel_size: int = 32, stride: int = 16, block_size: int = 64,
                 init_blocks: int = 1, window: int = 2048, topk: int = 64, dense_len: int = 8192,
                 mode: str = "auto"):
        super().__init__(config, layer_idx)
        self.sizes: dict[str, int] = {}
        self.configure(mode, kernel_size=kernel_size, stride=stride, block_size=block_size,
                       init_blocks=init_blocks, window=window, topk=topk, dense_len=dense_len)
        self.sparse_backend = self.backend if self.backend in SPARSE_BACKENDS else "auto"

    def configure(self, mode: str, **sizes) -> None:
        """Switch mode and, when given, sizes (the constructor's options); checked before anything changes."""
        unknown = set(sizes) - {*SIZE_NAMES, "dense_len"}
        if unknown:
            raise ValueError(f"unknown sizes {sorted(unknown)}; choose from {', '.join(SIZE_NAMES)} "
                             "and dense_len")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
        dense_len = sizes.pop("dense_len", getattr(self, "dense_len", None))
        check_int("dense_len", dense_len)
        merged = {**self.sizes, **sizes}
        check_sizes(**merged)
        self.mode, self.sizes, self.dense_len = mode, merged, dense_len

    def is_sparse(self, n_keys: int) -> bool:
        """Whether a call over n_keys keys (cache + new) runs sparse; False when sparse would equal dense."""
        if self.mode == "dense" or (self.mode == "auto" and n_keys < self.dense_len):
            return False
        n_blocks = -(-n_keys // self.sizes["block_size"])
        return n_blocks > blocks_per_query(**self.sizes)

    def attend(self, qk_in, v_in, cache, start_pos):
        b, t, _ = v_in.shape
        q, k, v = self._heads(qk_in, v_in, start_pos)
        if cache is not None:
            k, v, _ = cache.update(k, v, start_pos)
        if not self.is_sparse(k.shape[2]):
            y = self._attend(q, k, v, None, start_pos)
        else:
            y = self.sparse(q, k, v, self._compressed_keys(cache))
        return self.o_proj(y.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))

    def _compressed_keys(self, cache: SparseKVCache | None) -> torch.Tensor | None:
        if cache is None:
            return None
        if (cache.kernel_size, cache.stride) != (self.sizes["kernel_size"], self.sizes["stride"]):
            raise ValueError("the cache was built for other compressed-key sizes (kernel_size, stride): "
                             "start a new cache after changing them")
        return cache.compressed_keys()

    def sparse(self, q, k, v, kc=None):
        """Block-sparse attention of q (B, Hq, T, D) over k, v (B, Hkv, Tk, D) -> (B, Hq, T, D); kc: the
        cache's compressed keys (B, Hkv, C, D), else computed from k."""
        with torch.no_grad():  # the choice of blocks is not differentiable; attention over them is
            blocks = sparse_blocks(q, k, kc=kc, score=self._score, choose=self._choose, **self.sizes)
        return self._attend_blocks(q, k, v, blocks)

    # the steps minihybrid.plug_in can swap for a learner's own (ex03)
    _score = staticmethod(block_scores)
    _choose = staticmethod(select_blocks)

    def _attend_blocks(self, q, k, v, blocks):
        if torch.is_grad_enabled() and q.requires_grad:
            backend = "reference"
        else:
            backend = self.sparse_backend
            q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        return block_sparse_attention(q, k, v, blocks, block_size=self.sizes["block_size"], backend=backend)

    def init_cache(self, batch: int, max_len: int, dtype=torch.float32, device=None) -> SparseKVCache:
        return SparseKVCache(batch, self.n_kv_heads, self.head_dim, max_len, dtype=dtype, device=device,
                             kernel_size=self.sizes["kernel_size"], stride=self.sizes["stride"])

    def cache_bytes(self, seq_len: int, dtype_bytes: int = 4) -> int:
        """K and V for every token (sparse attention does not shrink the cache) plus the compressed keys."""
        windows = n_compressed(seq_len, self.sizes["kernel_size"], self.sizes["stride"])
        compressed = self.n_kv_heads * self.head_dim * windows * dtype_bytes
        return super().cache_bytes(seq_len, dtype_bytes) + compressed


def set_mode(model, mode: str, **sizes) -> int:
    """Set every switchable block of `model` to mode ("auto", "dense" or "sparse") and to the given sizes
    (any of the constructor's options, e.g. a preset; the others stay); returns how many blocks."""
    blocks = [m for m in model.modules() if isinstance(m, SwitchableAttention)]
    for block in blocks:
        block.configure(mode, **sizes)
    return len(blocks)

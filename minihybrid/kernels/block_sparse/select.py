"""InfLLM-V2's block selection: which key blocks each query attends to (arXiv 2509.24663, §3).

Glossary of tensor dimensions:
    B    batch size
    Hq   query heads; Hkv key/value heads; G = Hq // Hkv, the GQA group (query head h reads kv head h // G)
    Tq   query tokens at absolute positions q_pos (Tq,); Tk keys at positions 0..Tk-1
    D    head dimension
    C    compressed keys: full windows of `kernel_size` keys taken every `stride` tokens
    NB   key blocks of `block_size` tokens, ceil(Tk / block_size)
    S    selected blocks per query, at most init_blocks + window // block_size + 1 + topk

The steps, as the official kernels (OpenBMB/infllmv2_cuda_impl) and MiniCPM4's modeling code do them:
1. compress_keys: window c is the plain mean of the (post-RoPE) keys at [stride c, stride c + kernel_size);
   only full windows exist: Tk keys give (Tk - kernel_size) // stride + 1 of them (0 when Tk < kernel_size).
2. block_scores: each query head's softmax(q Kc^T / sqrt(D)) over the windows it can see (window c is visible
   to position p when its last key is, stride c + kernel_size - 1 <= p; a position that sees no window scores
   0), summed over the G heads of its group so the group picks one block set; then block k takes the max
   over every window that overlaps its tokens [block_size k, block_size (k + 1)) (for the paper's sizes,
   windows 4k-1 .. 4k+3).
3. select_blocks: forced blocks (+inf): the first `init_blocks` and the local window, which is the query's
   own block and the `window // block_size` blocks before it (the shipped kernel's choice: 33 blocks for
   window 2048; an older test keeps 32 in all); future blocks (-inf) are masked BEFORE top-k, so a query never
   wastes a slot on them; then the `topk` best remaining blocks are added. `topk` counts the EXTRA blocks, as
   the paper states it (the shipped code asks top-k for 96 = 64 + 32 in all, forced ones included).
   Indices come out ascending, padded with -1 when fewer blocks exist.

Where we differ: the paper's kernel normalises step 2's softmax with a coarser second set of compressed keys
(kernel 4x, stride 4x) to save a pass (~1.25x the cost of one attention-score pass instead of 2x); here the
softmax is exact. Its scores are bf16; ours float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minihybrid.checks import check_int

_TIE_SPAN = 1 << 24  # more than any number of blocks: the tie-break's place in select_blocks' ranking key


def check_sizes(kernel_size: int, stride: int, block_size: int, init_blocks: int = 1, window: int = 2048,
                topk: int = 0) -> None:
    """ValueError unless the sizes fit together: kernel and block multiples of the stride, a window of
    whole blocks (at least one)."""
    for name, value in (("kernel_size", kernel_size), ("stride", stride), ("block_size", block_size),
                        ("window", window)):
        check_int(name, value)
    for name, value in (("init_blocks", init_blocks), ("topk", topk)):
        check_int(name, value, minimum=0)
    for name, value in (("kernel_size", kernel_size), ("block_size", block_size)):
        if value % stride:
            raise ValueError(f"{name}={value} must be a multiple of stride={stride}")
    if window < block_size or window % block_size:
        raise ValueError(f"window={window} must be a whole number (>= 1) of blocks of {block_size} tokens")


def blocks_per_query(n_blocks: int | None = None, *, block_size: int, init_blocks: int, window: int,
                     topk: int, **_) -> int:
    """S: the blocks a query may take (init, its own and window // block_size before it, topk more), at most
    the n_blocks there are (when given). Other sizes (kernel_size, stride) are ignored: presets fit whole."""
    budget = init_blocks + window // block_size + 1 + topk
    return budget if n_blocks is None else min(n_blocks, budget)


def n_compressed(n_keys: int, kernel_size: int, stride: int) -> int:
    """How many full windows n_keys keys hold."""
    return 0 if n_keys < kernel_size else (n_keys - kernel_size) // stride + 1


def compress_keys(k: torch.Tensor, kernel_size: int, stride: int) -> torch.Tensor:
    """k (B, Hkv, Tk, D) -> window means (B, Hkv, C, D); window c averages the keys from stride c on.

    Exercise twin: ex03.compress_keys (with unfold, in k's dtype)."""
    b, h, t, d = k.shape
    c = n_compressed(t, kernel_size, stride)
    if c == 0:
        return k.new_zeros(b, h, 0, d)
    per = kernel_size // stride  # strides per window
    n = (c - 1 + per) * stride  # keys the windows cover
    acc = torch.float64 if k.dtype == torch.float64 else torch.float32
    sums = k[:, :, :n].to(acc).reshape(b, h, n // stride, stride, d).sum(3)  # (B, Hkv, strides, D)
    windows = sums.unfold(2, per, 1).sum(-1)  # (B, Hkv, C, D): `per` consecutive stride sums
    return (windows / kernel_size).to(k.dtype)


def visible_windows(q_pos: torch.Tensor, n_windows: int, kernel_size: int, stride: int) -> torch.Tensor:
    """(Tq, C) bool: window c is visible to the query at q_pos when its last key is at or before it.

    Exercise twin: ex03.visible_windows."""
    last_key = torch.arange(n_windows, device=q_pos.device) * stride + kernel_size - 1
    return last_key[None, :] <= q_pos[:, None]


def block_scores(q: torch.Tensor, kc: torch.Tensor, q_pos: torch.Tensor, *, kernel_size: int, stride: int,
                 block_size: int, n_blocks: int, scale: float | None = None) -> torch.Tensor:
    """Group-summed window probabilities max-pooled onto blocks: (B, Hkv, Tq, NB) float32.

    q (B, Hq, Tq, D) at positions q_pos (Tq,), kc (B, Hkv, C, D) from compress_keys. A block that no visible
    window overlaps scores 0 (a past block always has one; the query's own block may not).
    Exercise twin: ex03.block_scores (pool_onto_blocks included, as a (C, NB) overlap matrix).
    """
    b, hq, tq, d = q.shape
    hkv, c = kc.shape[1], kc.shape[2]
    scale = d**-0.5 if scale is None else scale
    if c == 0:  # no full window yet: every block scores 0
        return q.new_zeros(b, hkv, tq, n_blocks, dtype=torch.float32)
    logits = q.float().reshape(b, hkv, hq // hkv, tq, d) @ kc.float()[:, :, None].transpose(-1, -2) * scale
    seen = visible_windows(q_pos, c, kernel_size, stride)  # (Tq, C)
    probs = logits.masked_fill(~seen, float("-inf")).softmax(-1).nan_to_num(0.0)  # unseen rows: 0
    return pool_onto_blocks(probs.sum(2), kernel_size=kernel_size, stride=stride, block_size=block_size,
                            n_blocks=n_blocks)


def pool_onto_blocks(window_scores: torch.Tensor, *, kernel_size: int, stride: int, block_size: int,
                     n_blocks: int) -> torch.Tensor:
    """(..., C) window scores -> (..., NB): block k takes the max over the windows that overlap its tokens,
    k B/s - (K/s - 1) .. (k + 1) B/s - 1 (B block_size, K kernel_size, s stride), and 0 when none exists."""
    *lead, c = window_scores.shape
    left, step = kernel_size // stride - 1, block_size // stride
    span = (kernel_size + block_size) // stride - 1  # windows per block
    right = max(0, (n_blocks - 1) * step + span - left - c)
    padded = F.pad(window_scores.reshape(-1, 1, c), (left, right), value=float("-inf"))
    pooled = F.max_pool1d(padded, span, step)[..., :n_blocks].reshape(*lead, n_blocks)
    return pooled.clamp_min(0.0)  # -inf where no window exists yet -> 0, like an unseen window


def select_blocks(scores: torch.Tensor, q_pos: torch.Tensor, *, block_size: int, init_blocks: int,
                  window: int, topk: int) -> torch.Tensor:
    """Block indices (B, Hkv, Tq, S) int32 from block_scores' (B, Hkv, Tq, NB): the forced init and local
    blocks plus the `topk` best earlier blocks, ascending, -1 padded (module docstring, step 3).

    Exercise twin: ex03.select_blocks."""
    n_blocks = scores.shape[-1]
    own = torch.div(q_pos, block_size, rounding_mode="floor")[:, None]  # (Tq, 1)
    block = torch.arange(n_blocks, device=scores.device)[None, :]
    forced = (block < init_blocks) | ((block >= own - window // block_size) & (block <= own))
    ranked = scores.float().clamp_min(0.0).masked_fill(forced, float("inf"))
    # Blocks that share a boundary window often tie exactly; rank by (score, then the earlier block) so that
    # every call picks the same ones. A non-negative float's bits order like its value.
    key = ranked.view(torch.int32).long() * _TIE_SPAN + (_TIE_SPAN - 1 - block)
    key = key.masked_fill(block > own, -1)  # future blocks: never chosen
    width = blocks_per_query(n_blocks, block_size=block_size, init_blocks=init_blocks, window=window,
                             topk=topk)
    values, index = key.topk(width, dim=-1)
    index = index.masked_fill(values < 0, n_blocks).sort(-1).values  # missing ones sort last
    return index.masked_fill(index == n_blocks, -1).to(torch.int32)


def sparse_blocks(q: torch.Tensor, k: torch.Tensor, *, kernel_size: int, stride: int, block_size: int,
                  init_blocks: int, window: int, topk: int, kc: torch.Tensor | None = None,
                  chunk: int = 1024, score=block_scores, choose=select_blocks, backend: str = "auto"
                  ) -> torch.Tensor:
    """Every step at once: the blocks (B, Hkv, Tq, S) each query of q (B, Hq, Tq, D) attends to among the keys
    k (B, Hkv, Tk, D); queries sit at the end of the keys (positions Tk - Tq ..). `kc` passes compressed keys
    kept by a decode cache. Queries are scored `chunk` at a time, each chunk only against the windows and
    blocks its last query can see (causality halves a prefill's scoring), to bound memory (chunk x C).
    `score` and `choose` stand for block_scores and select_blocks (same arguments): the mixer plugs in a
    learner's own through them (minihybrid.plug_in). backend "torch" runs these steps as written here,
    "numba" the fused CPU kernel of select_cpu.py (same choices; float32/float64 CPU tensors), "auto" the
    kernel whenever it can (CPU, no autograd, the library's own steps)."""
    if backend not in ("auto", "torch", "numba"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'numba', got {backend!r}")
    tq, tk = q.shape[2], k.shape[2]
    kc = compress_keys(k, kernel_size, stride) if kc is None else kc
    width = blocks_per_query(-(-tk // block_size), block_size=block_size, init_blocks=init_blocks,
                             window=window, topk=topk)
    library_steps = score is block_scores and choose is select_blocks
    fits = (q.device.type == "cpu" and q.dtype in (torch.float32, torch.float64) and library_steps
            and not (torch.is_grad_enabled() and q.requires_grad))
    if backend == "numba" and not fits:
        raise ValueError("backend 'numba' needs float32/float64 CPU tensors without autograd and the "
                         "library's own score and choose steps")
    if backend == "numba" or (backend == "auto" and fits):
        from minihybrid.kernels.block_sparse.select_cpu import select_cpu  # imports numba: only when run

        out = torch.empty(q.shape[0], kc.shape[1], tq, width, dtype=torch.int32)
        return select_cpu(q.detach().contiguous(), kc.detach().to(q.dtype).contiguous(), out, tk - tq,
                          kernel_size=kernel_size, stride=stride, block_size=block_size,
                          init_blocks=init_blocks, window=window, topk=topk)
    out = []
    for i0 in range(0, tq, chunk):
        q_pos = torch.arange(tk - tq + i0, tk - tq + min(tq, i0 + chunk), device=q.device)
        last = int(q_pos[-1])
        scores = score(q[:, :, i0:i0 + chunk], kc[:, :, :n_compressed(last + 1, kernel_size, stride)],
                              q_pos, kernel_size=kernel_size, stride=stride, block_size=block_size,
                              n_blocks=last // block_size + 1)
        blocks = choose(scores, q_pos, block_size=block_size, init_blocks=init_blocks, window=window,
                               topk=topk)
        out.append(F.pad(blocks, (0, width - blocks.shape[-1]), value=-1))
    return torch.cat(out, dim=2)

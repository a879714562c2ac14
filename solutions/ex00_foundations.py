"""Exercise set 00: the foundations every layer in this course is built from.

RMSNorm, rotary position embeddings (RoPE), causal attention with grouped-query heads (GQA), and one
decoding step against a key/value cache. Test your answers with

    pytest tests/graded/test_ex00.py        (or: python -m minihybrid grade --exercise ex00)

Each function's docstring ends with its "Library twin": the library code that does the same job in the real
model (tests/test_exercise_twins.py checks that the two agree).

Glossary of tensor dimensions:
    B    batch size
    T    sequence length (number of query positions)
    D    head dimension (or model dimension for rms_norm)
    Hq   number of query heads
    Hkv  number of key/value heads; Hq is a multiple of Hkv, and G = Hq // Hkv query heads share one kv head
"""

import torch


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Root-mean-square normalisation over the last dimension.

    x: (..., D), weight: (D,). Returns a tensor shaped and typed like x:

        y = x / sqrt(mean(x**2 over the last dim) + eps) * weight

    Unlike LayerNorm there is no mean subtraction and no bias. Compute in float32 and cast the result
    back to x.dtype: in float16, x**2 overflows to inf as soon as |x| > 256.
    Hint: ``torch.rsqrt`` and ``mean(dim=-1, keepdim=True)``.

    Library twin: minihybrid.layers.norm.RMSNorm.forward
    """
    # BEGIN SOLUTION
    x32 = x.float()
    inv_rms = torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + eps)
    return (x32 * inv_rms * weight.float()).to(x.dtype)
    # END SOLUTION


def rope_cos_sin(
    positions: torch.Tensor, head_dim: int, base: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The cosine and sine tables of rotary position embeddings, in the rotate-half (Llama) layout.

    positions: (T,) integer absolute positions; head_dim D is even. Returns (cos, sin), each (T, D) float32.
    Dimension pair i (for i < D/2) rotates at frequency inv_freq[i] = base ** (-2i / D), so at position p
    its angle is p * inv_freq[i]. The rotate-half layout pairs dimension i with dimension i + D/2, so each
    table repeats the D/2 angles twice: cos = cos(cat([angle, angle], dim=-1)), likewise for sin.
    Hint: ``torch.outer(positions.float(), inv_freq)`` gives the (T, D/2) angles.

    Library twin: minihybrid.layers.rope.rope_tables
    """
    # BEGIN SOLUTION
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(positions.float(), inv_freq)
    emb = torch.cat([angles, angles], dim=-1)
    return emb.cos(), emb.sin()
    # END SOLUTION


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys by their positions' angles.

    x: (B, H, T, D); cos, sin: (T, D) from ``rope_cos_sin`` (they broadcast over B and H).

        out = x * cos + rotate_half(x) * sin,    rotate_half(x) = cat([-x2, x1], dim=-1)

    where x1 and x2 are the first and second halves of the last dimension. Read (x1[i], x2[i]) as the
    complex number x1[i] + j*x2[i]: the formula multiplies it by exp(j * angle[i]), a rotation, so norms
    are preserved and the dot product of a rotated query and key depends only on their relative position.

    Library twin: minihybrid.layers.rope.Rotary.forward
    """
    # BEGIN SOLUTION
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return x * cos + rotated * sin
    # END SOLUTION


def causal_gqa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal scaled dot-product attention with grouped-query heads, written out by hand.

    q: (B, Hq, T, D); k, v: (B, Hkv, T, D). Returns (B, Hq, T, D).
    Query head h reads kv head h // G with G = Hq // Hkv (consecutive query heads share a kv head).

        scores = q @ k^T / sqrt(D)              (B, Hq, T, T): scores[..., i, j] is query i against key j
        scores[..., i, j] = -inf for j > i      (causal: query i sees keys 0..i)
        out = softmax(scores over keys) @ v

    Hint: ``repeat_interleave(G, dim=1)`` expands the kv heads; ``torch.ones(T, T).tril()`` is the mask;
    ``torch.softmax`` subtracts the row maximum for you, so large scores do not overflow.

    Library twin: minihybrid.kernels.attention.reference.attention_reference
    """
    # BEGIN SOLUTION
    group = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)
    scores = q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5
    seq_len = q.shape[2]
    visible = torch.ones(seq_len, seq_len, dtype=torch.bool, device=q.device).tril()
    scores = scores.masked_fill(~visible, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v
    # END SOLUTION


def decode_step(
    q_new: torch.Tensor,
    k_new: torch.Tensor,
    v_new: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    pos: int,
) -> torch.Tensor:
    """One step of cached decoding: store the new token's key and value, then attend over the cache.

    q_new: (B, Hq, 1, D); k_new, v_new: (B, Hkv, 1, D); k_cache, v_cache: (B, Hkv, max_len, D),
    preallocated; pos: how many tokens are already cached. Returns (B, Hq, 1, D).

    1. Write k_new and v_new into the caches at index pos, in place (the caller keeps the caches).
    2. Attend q_new over keys and values 0..pos (the new token included): cache[:, :, :pos + 1].
    No causal mask is needed: the newest token may see every cached one. Slots after pos hold garbage.
    The result equals the last row of ``causal_gqa_attention`` over the whole sequence so far.

    Library twin: minihybrid.layers.cache.KVCache.update
    """
    # BEGIN SOLUTION
    k_cache[:, :, pos : pos + 1] = k_new
    v_cache[:, :, pos : pos + 1] = v_new
    group = q_new.shape[1] // k_cache.shape[1]
    k = k_cache[:, :, : pos + 1].repeat_interleave(group, dim=1)
    v = v_cache[:, :, : pos + 1].repeat_interleave(group, dim=1)
    scores = q_new @ k.transpose(-2, -1) * q_new.shape[-1] ** -0.5
    return torch.softmax(scores, dim=-1) @ v
    # END SOLUTION

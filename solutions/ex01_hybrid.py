"""Exercise set 01: the pieces of an attention / state-space hybrid.

The state-space (SSM) mixer of Mamba-2, one token at a time and then in chunks (the SSD form that trains
fast), the layout of attention blocks in an inter-layer hybrid ("1:5@sandwich"), and the fusion of the two
branches of an intra-layer hybrid. Test your answers with

    pytest tests/graded/test_ex01.py        (or: python -m minihybrid grade --exercise ex01)

Each function's docstring ends with its "Library twin": the library code that does the same job in the real
model (tests/test_exercise_twins.py checks that the two agree).

The SSM. Each head h has a scalar decay A_h < 0 and a state S of shape (P, N). At token t, with step size
dt_t > 0, input x_t (P,) and the vectors B_t, C_t (N,) of the head's group:

    S_t = exp(dt_t * A_h) * S_{t-1} + dt_t * outer(x_t, B_t)      (decay, then write)
    y_t = S_t @ C_t                                               (read)

Glossary of tensor dimensions:
    batch  sequences
    T      tokens
    H      SSM heads
    P      head dimension (channels of x per head)
    G      B/C groups; H is a multiple of G and head h reads group h // (H // G)
    N      state size (d_state)
    Q      chunk size (`chunk_size`)
    W      width of one branch of the intra-layer hybrid
"""

import torch
import torch.nn.functional as F


def ssm_step(
    state: torch.Tensor,
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token of the SSM: decay the state, write the token into it, read the output out of it.

    state: (batch, H, P, N); x: (batch, H, P); dt: (batch, H) > 0; A: (H,) < 0; B, C: (batch, G, N).
    Returns (y, new_state): y (batch, H, P), new_state (batch, H, P, N). Do not modify ``state`` in place.
    Head h reads B and C of group h // (H // G) (consecutive heads share a group). Per head:

        new_state = exp(dt * A_h) * state + dt * outer(x, B)     (outer(x, B)[p, n] = x[p] * B[n])
        y         = new_state @ C                                (y[p] = sum_n new_state[p, n] * C[n])

    Hint: ``repeat_interleave(H // G, dim=1)`` expands B and C to one row per head; broadcasting with
    ``[..., None]`` builds the outer product; ``torch.einsum("bhpn,bhn->bhp", ...)`` reads the state.

    Library twin: minihybrid.kernels.scan.reference.ssd_step
    """
    # BEGIN SOLUTION
    heads_per_group = x.shape[1] // B.shape[1]
    B = B.repeat_interleave(heads_per_group, dim=1)  # (batch, H, N)
    C = C.repeat_interleave(heads_per_group, dim=1)
    decay = torch.exp(dt * A)[..., None, None]  # (batch, H, 1, 1)
    write = (dt[..., None] * x)[..., None] * B[:, :, None, :]  # (batch, H, P, N)
    new_state = decay * state + write
    y = torch.einsum("bhpn,bhn->bhp", new_state, C)
    return y, new_state
    # END SOLUTION


def segsum(a: torch.Tensor) -> torch.Tensor:
    """Segment sums of ``a`` along its last dimension: the log-decays between every pair of positions.

    a: (..., Q). Returns (..., Q, Q), same dtype:

        out[..., i, j] = a[j+1] + a[j+2] + ... + a[i]     for i >= j   (0 on the diagonal: an empty sum)
        out[..., i, j] = -inf                              for i < j    (so that exp(out) is 0 there)

    With a = dt * A, exp(out[i, j]) is how much of what token j wrote is left at token i.
    Hint: put a[k] in row k of a (Q, Q) matrix, keep only the entries below the diagonal (k > j), and take
    the cumulative sum down the rows; ``masked_fill`` then sets the -inf. (cumsum[i] - cumsum[j] gives the
    same numbers, but subtracting two large sums loses precision.)

    Library twin: minihybrid.kernels.scan.chunked.segsum
    """
    # BEGIN SOLUTION
    q = a.shape[-1]
    below = torch.ones(q, q, dtype=torch.bool, device=a.device).tril(-1)  # k > j
    rows = a[..., :, None].expand(*a.shape, q).masked_fill(~below, 0)  # rows[k, j] = a[k] if k > j
    out = rows.cumsum(dim=-2)  # out[i, j] = sum of a[k] for j < k <= i
    lower = torch.ones(q, q, dtype=torch.bool, device=a.device).tril()
    return out.masked_fill(~lower, float("-inf"))
    # END SOLUTION


def ssd_chunked(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The SSM over a whole sequence in chunks of Q = chunk_size tokens: Mamba-2's SSD form.

    x: (batch, T, H, P); dt: (batch, T, H) > 0; A: (H,) < 0; B, C: (batch, T, G, N); initial_state:
    (batch, H, P, N) or None (zeros). Returns (y, final_state): y (batch, T, H, P), final_state (batch, H,
    P, N), the state after the last token. Both must equal ``ssm_step`` applied token by token from
    initial_state. Inputs are float32 or float64; compute in their dtype.

    With a_t = dt_t * A (<= 0) and xdt_t = dt_t * x_t, pad T up to a multiple of Q with a = 0 (decay
    exp(0) = 1) and xdt = 0 (nothing written): the padding then leaves the state as it was. Cut into chunks
    and, inside each chunk (positions i, j = 0..Q-1) with L = exp(segsum(a)) (Q, Q):

        1. intra-chunk   Y_diag[i] = sum_j L[i, j] (C_i . B_j) xdt_j      = ((C @ B^T) * L) @ xdt
        2. chunk state   S_chunk   = sum_j L[Q-1, j] * outer(xdt_j, B_j)   (what the chunk writes, as seen at
                                     its end; L[Q-1, j] = exp(a_{j+1} + ... + a_{Q-1}))
        3. inter-chunk   S_out = exp(a_0 + ... + a_{Q-1}) * S_in + S_chunk, chunk after chunk, starting
                         from S_in = initial_state; S_out of the last chunk is the final state
        4. output        Y_off[i] = exp(a_0 + ... + a_i) * (S_in @ C_i)    (what the incoming state adds)

    and y = Y_diag + Y_off, with the padding cut off. Steps 1, 2 and 4 are batched matmuls over all chunks
    and heads at once; step 3 is a loop over the T / Q chunks only.
    Hint: lay tensors out as (batch, chunks, H, Q, ...) with ``reshape`` and ``transpose``; expand B and C
    to one row per head as in ``ssm_step``; ``a.cumsum(-1)`` gives a_0 + ... + a_i.

    Library twin: minihybrid.kernels.scan.chunked.ssd_chunked
    """
    # BEGIN SOLUTION
    batch, length, heads, p = x.shape
    n, q = B.shape[-1], chunk_size
    heads_per_group = heads // B.shape[2]
    B = B.repeat_interleave(heads_per_group, dim=2)  # (batch, T, H, N)
    C = C.repeat_interleave(heads_per_group, dim=2)
    a = dt * A  # (batch, T, H)
    xdt = x * dt[..., None]  # (batch, T, H, P)

    pad = -length % q
    chunks = (length + pad) // q

    def to_chunks(t: torch.Tensor) -> torch.Tensor:  # (batch, T, H, ...) -> (batch, chunks, H, Q, ...)
        t = F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad))  # zeros after the last token
        return t.reshape(batch, chunks, q, *t.shape[2:]).transpose(2, 3)

    a, xdt, B, C = to_chunks(a), to_chunks(xdt), to_chunks(B), to_chunks(C)
    decay = torch.exp(segsum(a))  # (batch, chunks, H, Q, Q)
    y_diag = ((C @ B.transpose(-1, -2)) * decay) @ xdt  # 1. (batch, chunks, H, Q, P)
    chunk_states = (xdt * decay[..., -1, :, None]).transpose(-1, -2) @ B  # 2. (batch, chunks, H, P, N)

    a_cumsum = a.cumsum(dim=-1)  # (batch, chunks, H, Q): a_0 + ... + a_i
    state = initial_state if initial_state is not None else x.new_zeros(batch, heads, p, n)
    states_in = []
    for c in range(chunks):  # 3.
        states_in.append(state)
        state = torch.exp(a_cumsum[:, c, :, -1])[..., None, None] * state + chunk_states[:, c]
    states_in = torch.stack(states_in, dim=1)  # (batch, chunks, H, P, N)

    y_off = (C @ states_in.transpose(-1, -2)) * torch.exp(a_cumsum)[..., None]  # 4. (batch, chunks, H, Q, P)
    y = (y_diag + y_off).transpose(2, 3).reshape(batch, chunks * q, heads, p)[:, :length]
    return y, state
    # END SOLUTION


def expand_pattern(pattern: str, n_layers: int | None = None, other: str = "S", attention: str = "A") -> str:
    """The layout of an inter-layer hybrid, one letter per block, from a ratio pattern like "1:5@sandwich".

    pattern is "a:b" or "a:b@placement": a attention blocks for every b blocks of the other kind, placed as
    ``placement`` says ("spread" when left out). n_layers defaults to a + b. The layout has ``count =
    n_layers * a // (a + b)`` letters ``attention`` and the rest ``other``. With n = n_layers, the attention
    blocks sit at these indices i (i = 0..count-1; no index at all when count is 0):

        spread    floor((2i + 1) * n / (2 * count))    each centred in its share of n / count blocks
        every     floor(i * n / count)                 the first block of each share
        front     0, 1, ..., count - 1
        back      n - count, ..., n - 1
        sandwich  ceil(count / 2) at the front, floor(count / 2) at the back (the odd one at the front)
        center    count consecutive blocks from floor((n - count) / 2)

    For example expand_pattern("1:5", 12, "M") == "MMMAMMMMMAMM" and expand_pattern("2:4@sandwich") ==
    "ASSSSA". Raise ValueError for a pattern that is not "int:int" or "int:int@placement", for a negative
    part, for "0:0", for an unknown placement, for n_layers < 1 and for an n_layers that is not a multiple
    of a + b (the ratio must hold exactly).
    Hint: ``str.partition("@")`` and ``str.split(":")``; ``int()`` raises ValueError on bad text.

    Library twin: minihybrid.patterns.expand_ratio
    """
    # BEGIN SOLUTION
    ratio, _, placement = pattern.partition("@")
    try:
        a, b = (int(part) for part in ratio.split(":"))
    except ValueError:
        raise ValueError(f"ratio pattern {pattern!r} must look like '1:5' or '1:5@front'") from None
    if a < 0 or b < 0 or a + b == 0:
        raise ValueError(f"ratio pattern {pattern!r} needs non-negative parts, not both zero")
    n = a + b if n_layers is None else n_layers
    if n < 1 or n % (a + b):
        raise ValueError(f"n_layers={n} must be a positive multiple of {a + b} for the ratio {ratio}")
    count = n * a // (a + b)
    placements = {
        "spread": lambda: [(2 * i + 1) * n // (2 * count) for i in range(count)],
        "every": lambda: [i * n // count for i in range(count)],
        "front": lambda: list(range(count)),
        "back": lambda: list(range(n - count, n)),
        "sandwich": lambda: [*range((count + 1) // 2), *range(n - count // 2, n)],
        "center": lambda: list(range((n - count) // 2, (n - count) // 2 + count)),
    }
    placement = placement or "spread"
    if placement not in placements:
        raise ValueError(f"unknown placement {placement!r}; choose one of {', '.join(placements)}")
    letters = [other] * n
    for i in placements[placement]() if count else []:
        letters[i] = attention
    return "".join(letters)
    # END SOLUTION


def fuse_branches(
    attn_out: torch.Tensor,
    ssm_out: torch.Tensor,
    attn_weight: torch.Tensor,
    ssm_weight: torch.Tensor,
    fusion: str = "concat",
    eps: float = 1e-5,
) -> torch.Tensor:
    """Fuse the two branches of an intra-layer hybrid: normalise each, then concatenate or subtract.

    attn_out, ssm_out: (B, T, W), the raw outputs of the attention and the SSM branch; attn_weight,
    ssm_weight: (W,), each branch's RMSNorm gain. Each branch is normalised on its own, over its last
    dimension, so that neither drowns the other:

        a = attn_out / sqrt(mean(attn_out**2 over the last dim) + eps) * attn_weight
        s = ssm_out  / sqrt(mean(ssm_out**2 over the last dim) + eps)  * ssm_weight

    fusion "concat" returns cat([a, s], dim=-1), (B, T, 2W); fusion "diff" returns a - s, (B, T, W) (the
    differential form: what the two branches agree on cancels). Any other fusion: ValueError.
    The result has the dtype of attn_out.

    Library twin: minihybrid.layers.intra_hybrid.fuse_branches
    """
    # BEGIN SOLUTION
    if fusion not in ("concat", "diff"):
        raise ValueError(f"fusion must be 'concat' or 'diff', got {fusion!r}")

    def rms_norm(t: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return t * torch.rsqrt(t.pow(2).mean(dim=-1, keepdim=True) + eps) * weight

    a, s = rms_norm(attn_out, attn_weight), rms_norm(ssm_out, ssm_weight)
    return torch.cat([a, s], dim=-1) if fusion == "concat" else a - s
    # END SOLUTION

"""Exercise set 02: deconstructing attention, two variants of its mathematical form and where they go.

Deconstructing Attention (arXiv 2510.11602) swaps standard softmax attention, in some or all blocks of a
model, for variants that each relax one of its principles. This set builds the two that change the
*mathematical form*, and the table of configurations that says which blocks keep standard attention. Test
your answers with

    pytest tests/graded/test_ex02.py        (or: python -m minihybrid grade --exercise ex02)

Each function's docstring ends with its "Library twin": the library code that does the same job in the real
model (tests/test_exercise_twins.py checks that the two agree).

Approximate (Based's Taylor form, mixer "T"). Softmax's exp is replaced by its second-order Taylor
expansion, which factors through a feature map phi. With s = q . k / sqrt(f):

    exp(s) ~ 1 + s + s^2 / 2 = phi(q) . phi(k),   phi(x) = [1, x / f^(1/4), vec(x x^T) / (sqrt(2) sqrt(f))]
    o_i = sum_{j<=i} (phi(q_i) . phi(k_j)) v_j / sum_{j<=i} phi(q_i) . phi(k_j)
        = phi(q_i) S_i / (phi(q_i) . z_i)
    with the running sums S_i = sum_{j<=i} outer(phi(k_j), v_j)  (F, Dv)  and  z_i = sum_{j<=i} phi(k_j)  (F,)

The first line of o_i (the quadratic form) builds a (T, T) matrix; the second (the linear form) keeps only
the running sums S and z, a state of fixed size, as a recurrent model does. 1 + s + s^2/2 >= 1/2, so the
denominator never vanishes.

Non-approximate (mixer "N"). Softmax stays exact but the pairwise similarity q_i . k_j goes: each token j
gets one score from its own query and key, and every query averages the values so far with those weights:

    s_j = q_j . k_j / sqrt(D),    o_i = sum_{j<=i} exp(s_j) v_j / sum_{j<=i} exp(s_j)

Configurations (the paper's Table 11): which blocks keep standard attention ("A") while the variant fills
the rest; e.g. the hybrid interleaves the two, and "skip" drops the variant's blocks altogether.

Glossary of tensor dimensions:
    B    batch
    H    heads
    T    tokens
    f    feature dim of q and k in the Taylor form (Based uses 16)
    F    1 + f + f^2, the number of Taylor features
    D    head dim of q and k in the non-approximate form
    Dv   head dim of the values
"""

import math

import torch


def taylor_features(x: torch.Tensor) -> torch.Tensor:
    """Based's second-order Taylor feature map: phi(q) . phi(k) = 1 + s + s^2/2 with s = q . k / sqrt(f).

    x: (..., f), any number of leading dimensions. Returns phi(x), (..., 1 + f + f^2), same dtype, whose
    last dimension is the concatenation of three parts, in this order:

        phi(x)[0]                 = 1
        phi(x)[1 + a]             = x[a] / f ** (1/4)                            a = 0..f-1
        phi(x)[1 + f + a * f + b] = x[a] * x[b] / (sqrt(2) * sqrt(f))            a, b = 0..f-1

    (the last part is the outer product x x^T flattened row by row). Then phi(q) . phi(k) = 1 + q . k /
    sqrt(f) + (q . k)^2 / (2 f): the three terms of exp(s) ~ 1 + s + s^2 / 2.
    Hint: ``x[..., :, None] * x[..., None, :]`` is the outer product, ``flatten(-2)`` lays it out row by
    row, ``torch.ones_like(x[..., :1])`` the constant, and ``torch.cat(..., dim=-1)`` joins the parts.

    Library twin: minihybrid.layers.taylor.taylor_features
    """
    # BEGIN SOLUTION
    f = x.shape[-1]
    outer = (x[..., :, None] * x[..., None, :]).flatten(-2)  # (..., f * f): x[a] * x[b] at a * f + b
    return torch.cat([torch.ones_like(x[..., :1]), x / f**0.25, outer / math.sqrt(2 * f)], dim=-1)
    # END SOLUTION


def taylor_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal Taylor attention in linear time: token by token, with running sums instead of a (T, T) matrix.

    q, k: (B, H, T, f); v: (B, H, T, Dv), all of one dtype. Returns o (B, H, T, Dv), that dtype, equal to
    the quadratic form

        o_i = sum_{j<=i} w_ij v_j / sum_{j<=i} w_ij,  w_ij = 1 + s_ij + s_ij^2 / 2, s_ij = q_i . k_j / sqrt(f)

    but computed without any (T, T) matrix. With phi = ``taylor_features`` (F = 1 + f + f^2 features),
    keep per batch row and head a state S (F, Dv) and z (F,), both zero before the first token, and for
    each token i = 0, 1, ..., T-1 in turn:

        S = S + outer(phi(k_i), v_i)           (token i is added first: it sees itself)
        z = z + phi(k_i)
        o_i = phi(q_i) @ S / (phi(q_i) . z)

    Time and memory grow linearly with T (the state has a fixed size); the final state is not returned.
    Hint: compute phi of all queries and keys at once, then loop over the tokens only, on all batch rows
    and heads together (``[..., :, None] * [..., None, :]`` for the outer product).

    Library twin: minihybrid.layers.taylor.taylor_linear
    """
    # BEGIN SOLUTION
    phi_q, phi_k = taylor_features(q), taylor_features(k)  # (B, H, T, F)
    S = q.new_zeros(*phi_k.shape[:2], phi_k.shape[-1], v.shape[-1])  # (B, H, F, Dv)
    z = q.new_zeros(*phi_k.shape[:2], phi_k.shape[-1])  # (B, H, F)
    out = []
    for i in range(q.shape[2]):
        S = S + phi_k[:, :, i, :, None] * v[:, :, i, None, :]
        z = z + phi_k[:, :, i]
        numerator = (phi_q[:, :, i, :, None] * S).sum(-2)  # (B, H, Dv)
        denominator = (phi_q[:, :, i] * z).sum(-1, keepdim=True)  # (B, H, 1)
        out.append(numerator / denominator)
    return torch.stack(out, dim=2)
    # END SOLUTION


def non_approx_scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The scores of non-approximate attention: each token's query against its own key, and no other.

    q, k: (B, H, T, D). Returns s (B, H, T), same dtype:

        s[b, h, j] = (q[b, h, j] . k[b, h, j]) / sqrt(D)

    one score per token (standard attention would build the (T, T) matrix q_i . k_j instead).

    Library twin: minihybrid.layers.non_approx.same_token_scores
    """
    # BEGIN SOLUTION
    return (q * k).sum(dim=-1) / math.sqrt(q.shape[-1])
    # END SOLUTION


def non_approx_attention(s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The causal softmax average of non-approximate attention, numerically stable for any finite scores.

    s: (B, H, T) scores (from ``non_approx_scores``); v: (B, H, T, Dv), same dtype. Returns o (B, H, T, Dv),
    that dtype:

        o_i = sum_{j<=i} exp(s_j) v_j / sum_{j<=i} exp(s_j)

    a softmax over the tokens 0..i of the scores, weighting the values. Scores reach the thousands (the
    paper sees pre-softmax activations above 1e3), where exp overflows (float64 at 710, float32 at 89), and
    the spread between two tokens' scores can be as large: the result must stay finite and accurate, with
    no inf or NaN, for scores of either sign and any size. Subtracting one maximum over the whole sequence
    is not enough: the early tokens' exp(s_j - max) then all underflow to 0 and o_i is 0 / 0.
    Hint: go token by token keeping, per batch row and head, the running maximum m = max_{j<=i} s_j, the
    sum l = sum_{j<=i} exp(s_j - m) and acc = sum_{j<=i} exp(s_j - m) v_j, so o_i = acc / l; when m grows
    to m', multiply l and acc by exp(m - m') first (start from m = -inf, l = 0, acc = 0).

    Library twin: minihybrid.layers.non_approx.causal_softmax_average
    """
    # BEGIN SOLUTION
    m = torch.full_like(s[..., 0], -math.inf)  # (B, H): the running maximum
    total = torch.zeros_like(s[..., 0])  # sum of exp(s_j - m)
    acc = torch.zeros_like(v[..., 0, :])  # (B, H, Dv): sum of exp(s_j - m) v_j
    out = []
    for i in range(s.shape[-1]):
        new_m = torch.maximum(m, s[..., i])
        rescale, weight = torch.exp(m - new_m), torch.exp(s[..., i] - new_m)
        total = total * rescale + weight
        acc = acc * rescale[..., None] + weight[..., None] * v[..., i, :]
        m = new_m
        out.append(acc / total[..., None])
    return torch.stack(out, dim=-2)
    # END SOLUTION


def build_configuration(
    configuration: str | list[int], variant: str, n_layers: int, standard: str = "A"
) -> str:
    """The layer pattern of one of the paper's configurations: one letter per block, ``standard`` where the
    block keeps standard attention and ``variant`` (the studied variant's mixer letter) everywhere else.

    ``configuration`` is a name, or an explicit list of 0-based block indices that keep standard attention
    (duplicates allowed; an empty list is the uniform model). With n = n_layers and blocks 0..n-1 (block 0
    is the first, next to the embeddings), the blocks that keep standard attention are:

        uniform     none: the variant everywhere
        standard    all of them
        hybrid      the odd ones, 1, 3, 5, ..., n-1 (the variant at the even ones, 0, 2, ...); n even
        top         the first half, 0..n/2-1 (the variant in the other half); n even
        middle      the first ceil(n/4) and the last floor(n/4) blocks (half of them in all; the variant
                    in the middle half); n even
        bottom      the second half, n/2..n-1; n even
        every 4th   3, 7, 11, ..., n-1 (every 4th counted so that the last block keeps attention); n a
                    multiple of 4
        first       0 only
        last        n-1 only
        both ends   0 and n-1; n >= 2
        skip        the hybrid with the variant's blocks removed: ``standard`` n/2 times, a shorter
                    pattern (the model has only the hybrid's attention blocks); n even, n >= 2

    In the paper's 1-indexed numbering of 24 layers: hybrid {2, 4, ..., 24}, top {1-12}, middle {1-6,
    19-24}, bottom {13-24}, every 4th {4, 8, ..., 24}. Examples: build_configuration("hybrid", "N", 8) ==
    "NANANANA", build_configuration("every 4th", "T", 8) == "TTTATTTA", build_configuration([0, 2], "F",
    4) == "AFAF", build_configuration("skip", "N", 8) == "AAAA".
    Raise ValueError for: n_layers that is not an int >= 1; an unknown name (the message lists the valid
    names); an index in the list outside 0..n-1; n_layers that is not a multiple of what the configuration
    needs (2 for hybrid, top, middle, bottom and skip, 4 for every 4th); "skip" on a 1-layer model (it
    would remove every layer) and "both ends" on a 1-layer model (it has only one end).

    Library twin: minihybrid.patterns.configuration_pattern
    """
    # BEGIN SOLUTION
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"n_layers must be an int >= 1, got {n_layers!r}")
    n, half = n_layers, n_layers // 2
    if not isinstance(configuration, str):
        keep = sorted(set(configuration))
        if outside := [i for i in keep if not (isinstance(i, int) and 0 <= i < n)]:
            raise ValueError(f"standard-attention blocks {outside} are outside the blocks 0..{n - 1}")
        return "".join(standard if i in keep else variant for i in range(n))
    rules = {  # name -> (n_layers must be a multiple of this, the blocks that keep standard attention)
        "uniform": (1, []),
        "standard": (1, range(n)),
        "hybrid": (2, range(1, n, 2)),
        "top": (2, range(half)),
        "middle": (2, [*range((half + 1) // 2), *range(n - half // 2, n)]),
        "bottom": (2, range(half, n)),
        "every 4th": (4, range(3, n, 4)),
        "first": (1, [0]),
        "last": (1, [n - 1]),
        "both ends": (1, [0, n - 1]),
        "skip": (2, range(1, n, 2)),
    }
    if configuration not in rules:
        raise ValueError(f"unknown configuration {configuration!r}; choose one of {', '.join(rules)} "
                         "or a list of block indices")
    multiple, keep = rules[configuration]
    if n < 2 and configuration in ("skip", "both ends"):
        raise ValueError(f"configuration {configuration!r} needs at least 2 blocks, got n_layers={n}")
    if n % multiple:
        raise ValueError(f"configuration {configuration!r} needs n_layers to be a multiple of {multiple}, "
                         f"got {n}")
    if configuration == "skip":
        return standard * len(keep)
    return "".join(standard if i in keep else variant for i in range(n))
    # END SOLUTION

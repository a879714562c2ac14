"""Exercise set 05: weight compression, from a 4-bit grid to GPTQ's error compensation.

A decoding step reads every weight of the model once, so the bytes per weight decide its speed on a CPU.
Quantization stores each weight as a small integer code with a scale per group of inputs; pruning zeroes
the weights that matter least. This set builds the pieces: group-wise round-to-nearest quantization, the
packing of two 4-bit codes into one byte, Wanda's pruning score and the 2:4 pattern, and one block of
GPTQ, which lets the columns not yet quantized absorb each rounding error. Test your answers with

    pytest tests/graded/test_ex05.py        (or: python -m minihybrid grade --exercise ex05)

Each function's docstring ends with its "Library twin": the library code that does the same job in the real
model (tests/test_exercise_twins.py checks that the two agree).

The stored format (the library's, kernels/quant_matmul/reference.py): a weight W (N outputs, K inputs) is
cut into groups of ``group_size`` consecutive inputs per row; group g of row n has a scale s[n, g] and an
offset m[n, g], and each weight a code q in 0 .. 2**bits - 1 with

    W[n, k] ~ s[n, k // group_size] * q[n, k] + m[n, k // group_size]

Glossary of tensor dimensions:
    N    outputs (rows of W)        K    inputs (columns of W)        T    calibration tokens
    G    groups per row, K // group_size
    B    columns in one GPTQ block
"""

import torch


def quantize_groups(w: torch.Tensor, bits: int, group_size: int,
                    symmetric: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Round-to-nearest quantization of W (N, K) in groups: (codes (N, K) uint8, scales (N, G), mins (N, G)),
    scales and mins float32, K divisible by group_size. With top = 2**bits - 1, per group of values v:

        symmetric    s = 2 max|v| / top,                 m = -2**(bits - 1) s    (0 is the middle code)
        asymmetric   lo = min(min v, 0), hi = max(max v, 0)   (the range always includes 0)
                     s = (hi - lo) / top,                m = -round(-lo / s) s   (0 is exactly a code)
        a group whose s would be 0 (all zeros) gets s = 1
        q = clamp(round((v - m) / s), 0, top)

    E.g. bits 4, symmetric, the group [0, 2, -1, 0.5]: s = 4/15, m = -32/15, codes [8, 15, 4, 10].

    Library twin: minihybrid.compress.quantize.quantize_weight
    """
    # BEGIN SOLUTION
    n, k = w.shape
    groups = w.float().reshape(n, k // group_size, group_size)
    top = 2**bits - 1
    if symmetric:
        scales = 2 * groups.abs().amax(-1) / top
        scales = torch.where(scales > 0, scales, 1.0)
        mins = -(2 ** (bits - 1)) * scales
    else:
        low, high = groups.amin(-1).clamp(max=0), groups.amax(-1).clamp(min=0)
        scales = (high - low) / top
        scales = torch.where(scales > 0, scales, 1.0)
        mins = -torch.round(-low / scales) * scales
    codes = torch.round((groups - mins[..., None]) / scales[..., None]).clamp(0, top)
    return codes.reshape(n, k).to(torch.uint8), scales, mins
    # END SOLUTION


def pack_int4(codes: torch.Tensor) -> torch.Tensor:
    """Two 4-bit codes per byte: codes (N, K) integers in 0..15, K even -> packed (N, K // 2) uint8, with
    input 2c in the LOW nibble and input 2c + 1 in the HIGH nibble of byte c:

        packed[n, c] = codes[n, 2c] + 16 codes[n, 2c + 1]          e.g. codes [1, 2] -> byte 0x21 = 33

    Library twin: minihybrid.kernels.quant_matmul.reference.pack_codes
    """
    # BEGIN SOLUTION
    codes = codes.to(torch.uint8)
    return codes[:, 0::2] | (codes[:, 1::2] << 4)
    # END SOLUTION


def dequantize_groups(packed: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor, bits: int,
                      group_size: int) -> torch.Tensor:
    """The float32 W (N, K) that packed codes stand for: packed is (N, K) uint8 for bits 8, (N, K // 2) for
    bits 4 (``pack_int4``'s nibble order); scales and mins (N, G). W[n, k] = s[n, k // group_size] q[n, k] +
    m[n, k // group_size].

    Library twin: minihybrid.kernels.quant_matmul.reference.dequantize
    """
    # BEGIN SOLUTION
    codes = packed if bits == 8 else torch.stack((packed & 15, packed >> 4), dim=-1).flatten(-2)
    n, k = codes.shape
    groups = codes.float().reshape(n, k // group_size, group_size)
    return (groups * scales[..., None] + mins[..., None]).reshape(n, k)
    # END SOLUTION


def wanda_scores(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Wanda's importance of each weight of W (N, K) given the layer's calibration inputs x (T, K):

        S[n, k] = |W[n, k]| * ||x[:, k]||_2          (N, K) float32

    A weight matters when it is large AND its input is often large: a small weight on an input that is
    always big can matter more than a big weight on an input that is always near zero. (The library takes
    H = 2 x^T x / T instead of x: the same scores up to the constant sqrt(2 / T).)

    Library twin: minihybrid.compress.prune.wanda_scores
    """
    # BEGIN SOLUTION
    return w.abs().float() * x.float().norm(dim=0)
    # END SOLUTION


def two_four_mask(scores: torch.Tensor) -> torch.Tensor:
    """The 2:4 pattern: scores (N, K), K a multiple of 4 -> keep-mask (N, K) bool that keeps, in every 4
    consecutive inputs [4j, 4j + 4) of each row, the 2 highest scores (ties: the earlier input wins).

    Library twin: minihybrid.compress.prune.two_four_mask
    """
    # BEGIN SOLUTION
    n, k = scores.shape
    quads = scores.reshape(n, k // 4, 4)
    order = quads.argsort(dim=-1, descending=True, stable=True)[..., :2]
    return torch.zeros_like(quads, dtype=torch.bool).scatter_(-1, order, True).reshape(n, k)
    # END SOLUTION


def gptq_block(w: torch.Tensor, u: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor,
               bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One GPTQ block: quantize the B columns of w (N, B) one at a time, each rounding error pushed onto the
    columns after it. u (B, B) is the block's part of U, the upper Cholesky factor of H^-1 (H^-1 = U^T U);
    scales and mins (N,) are the grid of every column here (one group). For j = 0 .. B-1:

        q_j   = clamp(round((w_j - m) / s), 0, 2**bits - 1)              the codes of column j (N,)
        err_j = (w_j - (s q_j + m)) / u[j, j]
        w_l  -= err_j * u[j, l]        for every later column l > j      (w_j itself is done)

    Returns (codes (N, B) uint8, errors (N, B) float32: err_j in column j). w is not modified. The library
    then sends the block's errors on to the columns after the block with one matmul, errors @ U[block, rest]
    (this is the inner loop of the library's GPTQ, for one block of one group).

    Library twin: minihybrid.compress.gptq.gptq_quantize
    """
    # BEGIN SOLUTION
    w = w.float().clone()
    codes = torch.empty(w.shape, dtype=torch.uint8)
    errors = torch.empty_like(w)
    for j in range(w.shape[1]):
        q = torch.round((w[:, j] - mins) / scales).clamp(0, 2**bits - 1)
        codes[:, j] = q.to(torch.uint8)
        errors[:, j] = (w[:, j] - (q * scales + mins)) / u[j, j]
        w[:, j + 1:] -= errors[:, j:j + 1] * u[j, j + 1:]
    return codes, errors
    # END SOLUTION

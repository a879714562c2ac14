"""Speed of one attention layer of SmolLM2's shape, dense vs InfLLM-V2 sparse, measured the one way
(`minihybrid.timing`), so benchmarks/bench_block_sparse.py, notebook 03 and the sparse reproduction print the
same numbers.

One layer: batch 1, 9 query heads over 3 kv heads (G = 3), head dim 64, float32, causal, seeded random inputs.
    prefill  dense: PyTorch's fused SDPA (causal); sparse: block selection (select.py) + the Numba kernel
    decode   one query after n cached keys; dense: SDPA over all of them; sparse: selection from the cached
             compressed keys + the Numba kernel over the selected blocks
The speed-up is bounded per query by (n / 2) / (|I| B + n / stride): a causal dense query reads n / 2 keys on
average, a sparse one |I| blocks of B keys plus n / stride compressed keys to score them (`bound`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minihybrid.kernels.block_sparse import block_sparse_attention
from minihybrid.kernels.block_sparse.select import blocks_per_query, compress_keys, sparse_blocks
from minihybrid.timing import Timing, compare

HEADS, KV_HEADS, HEAD_DIM = 9, 3, 64  # SmolLM2-135M's attention


def selection_sizes(preset: dict) -> dict:
    """The block-selection sizes of a switchable-attention preset (its dense_len dropped)."""
    return {key: value for key, value in preset.items() if key != "dense_len"}


def attended_blocks(n: int, preset: dict) -> int:
    """|I|: the blocks (init, local, top-k) a query late in n tokens attends to, at most all there are."""
    return blocks_per_query(-(-n // preset["block_size"]), **preset)


def bound(n: int, preset: dict) -> float:
    """The speed-up limit (n / 2) / (|I| B + n / stride) of sparse over dense causal attention at n tokens."""
    return (n / 2) / (attended_blocks(n, preset) * preset["block_size"] + n / preset["stride"])


def layer_inputs(n: int, seed: int = 0, device="cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q (1, 9, n, 64), k and v (1, 3, n, 64), float32."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(1, HEADS, n, HEAD_DIM, generator=g).to(device),
            *(torch.randn(1, KV_HEADS, n, HEAD_DIM, generator=g).to(device) for _ in range(2)))


def sparse_attention(q, k, v, preset: dict, kc=None) -> torch.Tensor:
    """Select the blocks (from compressed keys kc when given) and attend to them with the compiled kernel of
    the tensors' device (Numba on the CPU, numba.cuda on a GPU)."""
    sizes = selection_sizes(preset)
    blocks = sparse_blocks(q, k, kc=kc, **sizes)
    backend = "numba" if q.device.type == "cpu" else "cuda"
    return block_sparse_attention(q, k, v, blocks, block_size=sizes["block_size"], backend=backend)


@torch.no_grad()
def time_prefill(n: int, presets: dict[str, dict], repeats: int = 3, device="cpu") -> dict[str, Timing]:
    """{"dense": SDPA, <preset name>: sparse} seconds per prefill of n tokens, interleaved."""
    q, k, v = layer_inputs(n, device=device)
    fns = {"dense": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)}
    fns |= {name: (lambda p=preset: sparse_attention(q, k, v, p)) for name, preset in presets.items()}
    return compare(fns, repeats=repeats, device=device)


@torch.no_grad()
def time_decode(n: int, presets: dict[str, dict], repeats: int = 7, steps: int = 8) -> dict[str, Timing]:
    """{"dense": SDPA, <preset name>: sparse} seconds for `steps` single-token decode steps after n keys
    (the cache's compressed keys already built, as in decoding), interleaved."""
    q, k, v = layer_inputs(n)
    q1 = q[:, :, -1:].contiguous()
    kcs = {name: compress_keys(k, p["kernel_size"], p["stride"]) for name, p in presets.items()}

    def repeat(fn):
        def run():
            for _ in range(steps):
                fn()
        return run

    fns = {"dense": repeat(lambda: F.scaled_dot_product_attention(q1, k, v, enable_gqa=True))}
    fns |= {name: repeat(lambda p=preset, kc=kcs[name]: sparse_attention(q1, k, v, p, kc))
            for name, preset in presets.items()}
    return compare(fns, repeats=repeats)

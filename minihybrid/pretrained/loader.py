"""SmolLM2-135M-Instruct (any llama-architecture GGUF file) as a `HybridLM`: attention blocks, or any pattern.

    model, tok = load_smollm2()                       # downloads the 98 MB GGUF once (see data/fetch.py)
    ids = torch.tensor([tok.encode(tok.chat_prompt("What is 2+2?"))])
    out = generate(model, ids, 32, eos_id=tok.eos_id)

The file's weights also fit another layer pattern whose mixers hold the same parameters as attention,
e.g. every block sliding-window attention sharing the full-attention weights:

    model, tok = load_smollm2(pattern=[LayerSpec("S", {"window": 256})] * 30)

A mixer with other parameters (a state-space block, say) is refused, naming the block, before any model is
built; so is a pattern with another number of blocks than the file.

Dimensions: V vocabulary, d d_model, F d_ff, Hq query heads, Hkv key/value heads, D head dim.

GGUF tensor names -> our modules (torch shapes, i.e. (out, in) for linear weights):

    token_embd.weight          (V, d)        embed.weight (and head.weight when there is no output.weight)
    output.weight              (V, d)        head.weight  (absent: tied embeddings)
    output_norm.weight         (d,)          norm.weight
    blk.{i}.attn_norm.weight   (d,)          blocks[i].mixer_norm.weight
    blk.{i}.attn_q.weight      (Hq*D, d)     blocks[i].mixer.q_proj.weight   rows un-permuted, see below
    blk.{i}.attn_k.weight      (Hkv*D, d)    blocks[i].mixer.k_proj.weight   rows un-permuted, see below
    blk.{i}.attn_v.weight      (Hkv*D, d)    blocks[i].mixer.v_proj.weight
    blk.{i}.attn_output.weight (d, Hq*D)     blocks[i].mixer.o_proj.weight
    blk.{i}.ffn_norm.weight    (d,)          blocks[i].ffn_norm.weight
    blk.{i}.ffn_gate.weight    (F, d)        blocks[i].ffn.gate.weight
    blk.{i}.ffn_up.weight      (F, d)        blocks[i].ffn.up.weight
    blk.{i}.ffn_down.weight    (d, F)        blocks[i].ffn.down.weight

Shape order: GGUF lists dimensions fastest-varying first (ggml's ne[0] = the contiguous one), so the file's
shape [576, 1536] of ffn_gate is the row-major (1536, 576) array that nn.Linear stores as (out, in).
Quantized tensors (Q4_1, Q8_0, ...) come out of `GGUFReader` as raw blocks, one row of bytes per weight
row; `gguf.quants.dequantize` turns them into float32.

Q/K permutation: llama.cpp's RoPE rotates adjacent pairs (x[2j], x[2j+1]), while HF Llama and our
`layers.rope` rotate halves (x[j], x[j + D/2]). The HF->GGUF converter therefore reorders the rows of
every head of q_proj and k_proj so that the interleaved rotation gives the same result:

    gguf = hf.reshape(H, 2, D/2, d).transpose(1, 2).reshape(H*D, d)   # row 2j <- j, row 2j+1 <- j + D/2

with H = Hq for attn_q and H = Hkv for attn_k. `unpermute_qk` applies the inverse,
reshape(H, D/2, 2, d).transpose(1, 2), which restores the rotate-half layout.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from gguf import GGUFReader
from gguf.quants import dequantize

from minihybrid.config import ModelConfig
from minihybrid.model import HybridLM
from minihybrid.pretrained.gguf_file import metadata, open_gguf, source_name
from minihybrid.pretrained.tokenizer import GGUFTokenizer

_BLOCK_NAMES = {  # GGUF name inside blk.{i} -> our parameter inside blocks[i]
    "attn_norm.weight": "mixer_norm.weight",
    "attn_q.weight": "mixer.q_proj.weight",
    "attn_k.weight": "mixer.k_proj.weight",
    "attn_v.weight": "mixer.v_proj.weight",
    "attn_output.weight": "mixer.o_proj.weight",
    "ffn_norm.weight": "ffn_norm.weight",
    "ffn_gate.weight": "ffn.gate.weight",
    "ffn_up.weight": "ffn.up.weight",
    "ffn_down.weight": "ffn.down.weight",
}
_MIXER_NAMES = {ours.removeprefix("mixer.") for ours in _BLOCK_NAMES.values() if ours.startswith("mixer.")}


def config_from_gguf(reader: GGUFReader, max_seq_len: int | None = None, pattern=None) -> ModelConfig:
    """The ModelConfig of a llama-architecture GGUF file.

    max_seq_len defaults to the file's training context (llama.context_length, 8192 for SmolLM2).
    pattern: anything `ModelConfig` accepts ("S" * 30, "1:5", a list of LayerSpec) with as many blocks as
    the file (llama.block_count); default every block "A" (full causal GQA attention).
    """
    source = source_name(reader)
    arch = metadata(reader, "general.architecture")
    if arch != "llama":
        raise ValueError(f"{source}: architecture {arch!r} is not supported (only 'llama')")
    if metadata(reader, "llama.rope.scaling.type", "none") != "none":
        raise ValueError(f"{source}: RoPE scaling is not supported")
    names = {t.name for t in reader.tensors}
    if "token_embd.weight" not in names:
        raise ValueError(f"{source} has no token_embd.weight tensor")
    if any(name.endswith(".bias") for name in names):
        raise ValueError(f"{source}: linear biases are not supported")
    d_model = int(metadata(reader, "llama.embedding_length"))
    n_heads = int(metadata(reader, "llama.attention.head_count"))
    head_dim = int(metadata(reader, "llama.attention.key_length", d_model // n_heads))
    if int(metadata(reader, "llama.rope.dimension_count", head_dim)) != head_dim:
        raise ValueError(f"{source}: partial rotary embeddings are not supported")
    embed = next(t for t in reader.tensors if t.name == "token_embd.weight")
    n_blocks = int(metadata(reader, "llama.block_count"))
    config = ModelConfig(
        vocab_size=int(embed.shape[1]),  # GGUF shape (d, V), fastest dimension first
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=int(metadata(reader, "llama.attention.head_count_kv", n_heads)),
        head_dim=head_dim,
        d_ff=int(metadata(reader, "llama.feed_forward_length")),
        pattern="A" * n_blocks,
        max_seq_len=int(metadata(reader, "llama.context_length")) if max_seq_len is None else max_seq_len,
        rope_base=float(metadata(reader, "llama.rope.freq_base", 10000.0)),
        norm_eps=float(metadata(reader, "llama.attention.layer_norm_rms_epsilon")),
        tie_embeddings="output.weight" not in names,
    )
    if pattern is None:
        return config
    ratio = isinstance(pattern, str) and ":" in pattern  # a ratio fills the file's block count
    config = config.with_pattern(pattern, n_layers=n_blocks if ratio else None)
    if config.n_layers != n_blocks:
        raise ValueError(f"pattern {config.pattern_string!r} has {config.n_layers} blocks but {source} has "
                         f"{n_blocks}; give one mixer per block")
    return config


def unpermute_qk(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's per-head interleaving of q/k rows: (H*D, d) GGUF layout -> (H*D, d) rotate-half."""
    rows, cols = weight.shape
    return weight.reshape(n_heads, rows // n_heads // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def state_dict_from_gguf(reader: GGUFReader, config: ModelConfig) -> dict[str, torch.Tensor]:
    """Dequantized float32 tensors under our parameter names; all must be present with the right shapes.

    Every block's mixer must hold exactly the attention parameters the file gives it (q/k/v/o_proj),
    whatever its letter; otherwise ValueError names the block, its letter and the names that differ.
    """
    source = source_name(reader)
    tensors = {t.name: t for t in reader.tensors}
    wanted = {"token_embd.weight": "embed.weight", "output_norm.weight": "norm.weight"}
    if not config.tie_embeddings:
        wanted["output.weight"] = "head.weight"
    for i in range(config.n_layers):
        wanted.update({f"blk.{i}.{g}": f"blocks.{i}.{ours}" for g, ours in _BLOCK_NAMES.items()})
    unknown = sorted(set(tensors) - set(wanted) - {"output.weight"})
    if unknown:  # e.g. rope_freqs.weight (Llama-3 RoPE scaling): loading without it would be silently wrong
        raise ValueError(f"{source} has tensors this loader does not understand: {unknown[:5]}")
    missing = sorted(set(wanted) - set(tensors) - {"token_embd.weight"})
    if missing:
        raise ValueError(f"{source} lacks tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    expected = _param_shapes(config)
    _check_mixers(config, expected, source)
    state = {}
    for gguf_name, ours in sorted(wanted.items(), key=lambda kv: kv[1]):
        t = tensors[gguf_name]
        try:
            weight = dequantize(t.data, t.tensor_type)
        except NotImplementedError as e:
            raise ValueError(f"{source}: {gguf_name} is {t.tensor_type.name}, which gguf cannot "
                             f"dequantize ({e})") from e
        if gguf_name.endswith("attn_q.weight"):
            weight = unpermute_qk(weight, config.n_heads)
        elif gguf_name.endswith("attn_k.weight"):
            weight = unpermute_qk(weight, config.n_kv_heads)
        if tuple(weight.shape) != expected[ours]:
            raise ValueError(f"{source}: {gguf_name} has shape {tuple(weight.shape)}, "
                             f"expected {expected[ours]} for {ours}")
        state[ours] = torch.from_numpy(np.array(weight, dtype=np.float32))  # a copy: the file is read-only
    if config.tie_embeddings:
        state["head.weight"] = state["embed.weight"]
    return state


def _param_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of HybridLM(config), without allocating it."""
    with torch.device("meta"):
        model = HybridLM(config)
    return {name: tuple(p.shape) for name, p in model.state_dict().items()}


def _check_mixers(config: ModelConfig, shapes: dict[str, tuple[int, ...]], source: str) -> None:
    """Each block's mixer has exactly the parameters q_proj, k_proj, v_proj, o_proj that the file provides."""
    for i, spec in enumerate(config.layers):
        prefix = f"blocks.{i}.mixer."
        has = {name.removeprefix(prefix) for name in shapes if name.startswith(prefix)}
        if has != _MIXER_NAMES:
            raise ValueError(
                f"block {i}: mixer {spec.mixer!r} does not hold the attention parameters of {source}: "
                f"the mixer lacks {sorted(_MIXER_NAMES - has)}, the file lacks {sorted(has - _MIXER_NAMES)}"
            )


def load_gguf_model(path: str | os.PathLike, dtype: torch.dtype = torch.float32,
                    max_seq_len: int | None = None, reader: GGUFReader | None = None,
                    pattern=None) -> HybridLM:
    """A HybridLM in eval mode with the (dequantized) weights of a llama-architecture GGUF file.

    Everything is read and checked before the model is built, so a bad file raises ValueError and
    returns nothing half-loaded. Pass `reader` to reuse an open `open_gguf(path)`; `pattern` builds
    another layer pattern on the same weights (see `config_from_gguf`).
    """
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.float32, got {dtype!r}")
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point dtype (torch.float32, torch.bfloat16, ...), "
                         f"got {dtype}")
    reader = reader or open_gguf(path)
    config = config_from_gguf(reader, max_seq_len, pattern)
    state = state_dict_from_gguf(reader, config)
    model = HybridLM(config)
    model.load_state_dict(state, strict=True)
    return model.to(dtype).eval()


def load_smollm2(path: str | os.PathLike | None = None, dtype: torch.dtype = torch.float32,
                 max_seq_len: int | None = None, pattern=None) -> tuple[HybridLM, GGUFTokenizer]:
    """SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized) and its tokenizer.

    path: a .gguf file; default `minihybrid.data.fetch.smollm2_gguf_path()` (env MINIHYBRID_SMOLLM2_GGUF,
    else downloaded once into the cache; raises DownloadError when that is impossible).
    pattern: 30 blocks in any layer pattern whose mixers take attention weights; default all "A".
    """
    if path is None:
        from minihybrid.data.fetch import smollm2_gguf_path

        path = smollm2_gguf_path()
    reader = open_gguf(path)
    tokenizer = GGUFTokenizer.from_reader(reader)
    return load_gguf_model(path, dtype, max_seq_len, reader=reader, pattern=pattern), tokenizer

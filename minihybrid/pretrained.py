"""SmolLM2-135M-Instruct (any llama-architecture GGUF file) as a `HybridLM` of attention blocks.

    model, tok = load_smollm2()                       # downloads the 98 MB GGUF once (see data/fetch.py)
    ids = torch.tensor([tok.encode(tok.chat_prompt("What is 2+2?"))])
    out = generate(model, ids, 32, eos_id=tok.eos_id)

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

from pathlib import Path

import numpy as np
import torch
from gguf import GGUFReader
from gguf.quants import dequantize

from minihybrid.config import ModelConfig
from minihybrid.model import HybridLM
from minihybrid.tokenizer_gguf import GGUFTokenizer

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


def open_gguf(path: str | Path) -> GGUFReader:
    """A `GGUFReader` for `path`; anything that is not a complete GGUF file raises ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {path}")
    try:
        reader = GGUFReader(path)
    except OSError:
        raise
    except Exception as e:  # the reader fails with ValueError, IndexError, ... on corrupt input
        raise ValueError(f"{path} could not be read as a GGUF file (corrupt, truncated or another format): "
                         f"{e}") from e
    size = path.stat().st_size
    for tensor in reader.tensors:
        if tensor.data_offset + tensor.n_bytes > size or tensor.data.nbytes != tensor.n_bytes:
            raise ValueError(f"{path} is truncated: tensor {tensor.name} runs past the end of the file")
    return reader


def _field(reader: GGUFReader, key: str, default=None):
    field = reader.fields.get(key)
    if field is None:
        if default is None:
            raise ValueError(f"{_source(reader)} lacks the metadata key {key!r}")
        return default
    return field.contents()


def _source(reader: GGUFReader) -> str:
    return str(getattr(reader.data, "filename", None) or "GGUF file")


def config_from_gguf(reader: GGUFReader, max_seq_len: int | None = None) -> ModelConfig:
    """The ModelConfig of a llama-architecture GGUF file: every block "A" (full causal GQA attention).

    max_seq_len defaults to the file's training context (llama.context_length, 8192 for SmolLM2).
    """
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ValueError(f"{_source(reader)}: architecture {arch!r} is not supported (only 'llama')")
    if _field(reader, "llama.rope.scaling.type", "none") != "none":
        raise ValueError(f"{_source(reader)}: RoPE scaling is not supported")
    names = {t.name for t in reader.tensors}
    if "token_embd.weight" not in names:
        raise ValueError(f"{_source(reader)} has no token_embd.weight tensor")
    if any(name.endswith(".bias") for name in names):
        raise ValueError(f"{_source(reader)}: linear biases are not supported")
    d_model = int(_field(reader, "llama.embedding_length"))
    n_heads = int(_field(reader, "llama.attention.head_count"))
    head_dim = int(_field(reader, "llama.attention.key_length", d_model // n_heads))
    if int(_field(reader, "llama.rope.dimension_count", head_dim)) != head_dim:
        raise ValueError(f"{_source(reader)}: partial rotary embeddings are not supported")
    embed = next(t for t in reader.tensors if t.name == "token_embd.weight")
    return ModelConfig(
        vocab_size=int(embed.shape[1]),  # GGUF shape (d, V), fastest dimension first
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=int(_field(reader, "llama.attention.head_count_kv", n_heads)),
        head_dim=head_dim,
        d_ff=int(_field(reader, "llama.feed_forward_length")),
        pattern="A" * int(_field(reader, "llama.block_count")),
        max_seq_len=max_seq_len or int(_field(reader, "llama.context_length")),
        rope_base=float(_field(reader, "llama.rope.freq_base", 10000.0)),
        norm_eps=float(_field(reader, "llama.attention.layer_norm_rms_epsilon")),
        tie_embeddings="output.weight" not in names,
    )


def unpermute_qk(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's per-head interleaving of q/k rows: (H*D, d) GGUF layout -> (H*D, d) rotate-half."""
    rows, cols = weight.shape
    return weight.reshape(n_heads, rows // n_heads // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def state_dict_from_gguf(reader: GGUFReader, config: ModelConfig) -> dict[str, torch.Tensor]:
    """Dequantized float32 tensors under our parameter names; all must be present with the right shapes."""
    tensors = {t.name: t for t in reader.tensors}
    wanted = {"token_embd.weight": "embed.weight", "output_norm.weight": "norm.weight"}
    if not config.tie_embeddings:
        wanted["output.weight"] = "head.weight"
    for i in range(config.n_layers):
        wanted.update({f"blk.{i}.{g}": f"blocks.{i}.{ours}" for g, ours in _BLOCK_NAMES.items()})
    unknown = sorted(set(tensors) - set(wanted) - {"output.weight"})
    if unknown:  # e.g. rope_freqs.weight (Llama-3 RoPE scaling): loading without it would be silently wrong
        raise ValueError(f"{_source(reader)} has tensors this loader does not understand: {unknown[:5]}")
    missing = sorted(set(wanted) - set(tensors) - {"token_embd.weight"})
    if missing:
        raise ValueError(f"{_source(reader)} lacks tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    expected = _param_shapes(config)
    state = {}
    for gguf_name, ours in sorted(wanted.items(), key=lambda kv: kv[1]):
        t = tensors[gguf_name]
        try:
            weight = dequantize(t.data, t.tensor_type)
        except NotImplementedError as e:
            raise ValueError(f"{_source(reader)}: {gguf_name} is {t.tensor_type.name}, which gguf cannot "
                             f"dequantize ({e})") from e
        if gguf_name.endswith("attn_q.weight"):
            weight = unpermute_qk(weight, config.n_heads)
        elif gguf_name.endswith("attn_k.weight"):
            weight = unpermute_qk(weight, config.n_kv_heads)
        if tuple(weight.shape) != expected[ours]:
            raise ValueError(f"{_source(reader)}: {gguf_name} has shape {tuple(weight.shape)}, "
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


def load_gguf_model(path: str | Path, dtype: torch.dtype = torch.float32, max_seq_len: int | None = None,
                    reader: GGUFReader | None = None) -> HybridLM:
    """A HybridLM in eval mode with the (dequantized) weights of a llama-architecture GGUF file.

    Everything is read and checked before the model is built, so a bad file raises ValueError and
    returns nothing half-loaded. Pass `reader` to reuse an open `open_gguf(path)`.
    """
    reader = reader or open_gguf(path)
    config = config_from_gguf(reader, max_seq_len)
    state = state_dict_from_gguf(reader, config)
    model = HybridLM(config)
    model.load_state_dict(state, strict=True)
    return model.to(dtype).eval()


def load_smollm2(path: str | Path | None = None, dtype: torch.dtype = torch.float32,
                 max_seq_len: int | None = None) -> tuple[HybridLM, GGUFTokenizer]:
    """SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized) and its tokenizer.

    path: a .gguf file; default `minihybrid.data.fetch.smollm2_gguf_path()` (env MINIHYBRID_SMOLLM2_GGUF,
    else downloaded once into the cache; raises DownloadError when that is impossible).
    """
    if path is None:
        from minihybrid.data.fetch import smollm2_gguf_path

        path = smollm2_gguf_path()
    reader = open_gguf(path)
    tokenizer = GGUFTokenizer.from_reader(reader)
    return load_gguf_model(path, dtype, max_seq_len, reader=reader), tokenizer

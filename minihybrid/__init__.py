"""minihybrid: efficient and hybrid language-model architectures, built from scratch.

    config.py      ModelConfig and layer patterns ("AAMM", "1:5", [LayerSpec, ...])
    layers/        token mixers behind one interface, registered by letter; norm, RoPE, FFN, caches
    model.py       Block and HybridLM (full-sequence forward, cached decoding, layer skipping)
    kernels/       reference (PyTorch) / Numba CPU / numba.cuda kernels behind one shared dispatcher
    data/          corpora, tokenizers, batches, synthetic tasks, the download cache
    pretrained/    GGUF reading, SmolLM2-135M loading (any layer pattern), its tokenizer
    train.py       the training loop;  trained.py  trained models cached by config and seed
    generate.py    prefill / decode_one_token and the decoding loop built from them
    timing.py      the one way to time;  decode_speed.py  SmolLM2 decode speed vs transformers
    plots.py       figures shared by notebooks and the report
    reproduce/     one module per paper; `python -m minihybrid reproduce`
"""

from minihybrid.config import LayerSpec, ModelConfig
from minihybrid.model import HybridLM, ModelCache

__all__ = ["HybridLM", "LayerSpec", "ModelCache", "ModelConfig"]
__version__ = "0.1.0"

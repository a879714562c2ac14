"""minihybrid: efficient and hybrid language-model architectures, built from scratch.

    config.py      ModelConfig and layer patterns ("AAMM", "1:5", [LayerSpec, ...])
    layers/        token mixers behind one interface, registered by letter; norm, RoPE, FFN, caches
    model.py       Block and HybridLM (full-sequence forward, cached decoding, layer skipping)
    kernels/       reference (PyTorch) / Numba CPU / numba.cuda kernels with one dispatcher per op
    data/          corpora, tokenizers, synthetic tasks, the download cache
    pretrained.py  SmolLM2-135M from GGUF
    train.py       the training loop;  generate.py  decoding with caches
    reproduce/     one module per paper; `python -m minihybrid reproduce`
"""

from minihybrid.config import LayerSpec, ModelConfig
from minihybrid.model import HybridLM, ModelCache

__all__ = ["HybridLM", "LayerSpec", "ModelCache", "ModelConfig"]
__version__ = "0.1.0"

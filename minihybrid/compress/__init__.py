"""Weight compression: quantization (round-to-nearest, GPTQ) and pruning (magnitude, Wanda).

quantize.py    the scheme (bits, group size, symmetric), RTN fitting, QuantizedWeight
modules.py     QuantLinear / QuantEmbedding swapped into any HybridLM, q|k|v and gate|up stored together
               (one kernel call each when decoding), true weight memory
checkpoint.py  quantized models as safetensors with their schemes recorded
calibrate.py   calibration activations, collected block by block
gptq.py        GPTQ: error-compensating quantization from the inputs' Hessian
prune.py       magnitude and Wanda pruning, unstructured and 2:4, with a sparsity report
"""

from minihybrid.compress.checkpoint import load_quantized, save_quantized
from minihybrid.compress.modules import (
    QuantEmbedding,
    QuantLinear,
    fuse_projections,
    quantize_model,
    weight_bytes,
)
from minihybrid.compress.quantize import QuantizedWeight, QuantScheme, fit_groups, quantize_weight

__all__ = ["QuantEmbedding", "QuantLinear", "QuantScheme", "QuantizedWeight", "fit_groups",
           "fuse_projections", "load_quantized", "quantize_model", "quantize_weight", "save_quantized",
           "weight_bytes"]

"""QuantLinear / QuantEmbedding swapped into a HybridLM (the tied head too), and its true memory."""

import pytest
import torch
from torch import nn

from minihybrid import HybridLM, ModelConfig
from minihybrid.compress import QuantEmbedding, QuantLinear, QuantScheme, quantize_model, weight_bytes
from minihybrid.compress.modules import linear_names
from minihybrid.compress.quantize import quantize_weight


def tiny_model(tie=True) -> HybridLM:
    torch.manual_seed(0)
    return HybridLM(ModelConfig(vocab_size=64, d_model=64, n_heads=4, n_kv_heads=2, pattern="AA",
                                max_seq_len=32, tie_embeddings=tie)).eval()


@pytest.mark.parametrize("bits, tolerance", [(8, 0.01), (4, 0.2)])
def test_quantized_model_tracks_the_float_model(bits, tolerance):
    model = tiny_model()
    x = torch.randint(0, 64, (2, 20))
    with torch.no_grad():
        ref = model(x)
        quantize_model(model, QuantScheme(bits, 32))
        out = model(x)
    assert all(isinstance(model.get_submodule(n), QuantLinear) for n in ("blocks.0.mixer.q_proj", "head"))
    assert not linear_names(model)
    assert (out - ref).abs().max() / ref.abs().max() < tolerance


def test_tied_embedding_reads_the_quantized_head():
    model = quantize_model(tiny_model(), QuantScheme(4, 32))
    assert isinstance(model.embed, QuantEmbedding)
    ids = torch.tensor([[3, 0, 63]])
    assert torch.equal(model.embed(ids)[0], model.head.weight.dequantize()[ids[0]])
    assert not any(k.startswith("embed.") for k in model.state_dict())  # stored once, as the head


def test_untied_embedding_stays_float_and_include_filters():
    model = quantize_model(tiny_model(tie=False), QuantScheme(8, None), include=lambda n: "ffn" in n)
    assert isinstance(model.embed, nn.Embedding) and isinstance(model.head, nn.Linear)
    assert isinstance(model.blocks[1].ffn.down, QuantLinear)
    assert isinstance(model.blocks[1].mixer.o_proj, nn.Linear)


def test_weight_bytes_counts_tied_storage_once_and_shrinks():
    model = tiny_model()
    float_bytes = weight_bytes(model)
    assert float_bytes == 4 * sum(p.numel() for p in model.parameters())  # tied: parameters() dedups
    quantize_model(model, QuantScheme(4, 32))
    linear = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, QuantLinear))
    scale_bytes = sum(m.scales.numel() * 8 for m in model.modules() if isinstance(m, QuantLinear))
    norms = sum(p.numel() * 4 for p in model.parameters())
    assert weight_bytes(model) == linear // 2 + scale_bytes + norms


def test_bias_is_refused():
    model = nn.Sequential(nn.Linear(32, 8))
    with pytest.raises(ValueError, match="has a bias"):
        quantize_model(model, QuantScheme())


def test_a_refused_weight_is_named_and_leaves_the_model_as_it_was():
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    wrong = quantize_weight(torch.randn(10, 32), QuantScheme(4, 32))
    with pytest.raises(ValueError, match=r"the weight given for blocks.0.mixer.o_proj is \(10, 32\)"):
        quantize_model(model, QuantScheme(4, 32), weights={"blocks.0.mixer.o_proj": wrong})
    assert not any(isinstance(m, QuantLinear) for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_linears_whose_inputs_do_not_split_take_a_smaller_group_with_a_warning():
    model = HybridLM(ModelConfig(vocab_size=64, d_model=96, n_heads=4, n_kv_heads=2, pattern="A",
                                 max_seq_len=32)).eval()
    with pytest.warns(UserWarning, match=r"linears take a smaller group than int4 g64 sym.*int4 g32 sym x"):
        quantize_model(model, QuantScheme(4, 64))
    assert {m.scheme.group_size for m in model.modules() if isinstance(m, QuantLinear)} >= {32}

"""The MLP mixer (minihybrid/layers/token_mlp.py): sized like attention, and no token mixing at all."""

import torch

from minihybrid import HybridLM, ModelConfig


def test_it_has_about_as_many_parameters_as_attention():
    for heads, kv_heads in ((4, 4), (4, 2)):
        config = ModelConfig(d_model=48, n_heads=heads, n_kv_heads=kv_heads, pattern="AF")
        model = HybridLM(config)
        attention, mlp = (sum(p.numel() for p in b.mixer.parameters()) for b in model.blocks)
        assert abs(mlp - attention) <= 3 * 48


def test_each_position_is_predicted_from_its_own_token_alone():
    torch.manual_seed(0)
    model = HybridLM(ModelConfig(vocab_size=30, d_model=16, n_heads=2, pattern="FF", max_seq_len=16)).eval()
    x = torch.randint(0, 30, (1, 10))
    y = torch.randint(0, 30, (1, 10))
    y[0, 4] = x[0, 4]
    torch.testing.assert_close(model(x)[0, 4], model(y)[0, 4])
    assert model.cache_bytes(16) == [0, 0]

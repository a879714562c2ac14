"""The model's cross-layer channel (minihybrid/side_inputs.py): reference sequences recomputed with gradients
while training, cached at inference until a parameter changes."""

import torch

from minihybrid import HybridLM, ModelConfig
from minihybrid.side_inputs import SideInputs


def model(pattern="ARAR"):
    torch.manual_seed(0)
    return HybridLM(ModelConfig(vocab_size=50, d_model=32, n_heads=2, pattern=pattern, max_seq_len=32))


def test_training_recomputes_the_reference_with_gradients_through_the_blocks_below():
    m = model()
    mixer = m.blocks[1].mixer
    states = SideInputs(m, None, 20).reference(mixer)
    assert len(states) == 4 and states[1].shape == (1, 20, 32) and states[1].requires_grad
    states[1].sum().backward()  # block 1's reference input depends on block 0's weights
    assert m.blocks[0].mixer.q_proj.weight.grad is not None and not m.reference_cache


def test_inference_caches_the_reference_until_a_parameter_changes():
    m = model()
    mixer = m.blocks[1].mixer
    x = torch.randint(0, 50, (2, 16))
    with torch.no_grad():
        before = m(x)
        cached = SideInputs(m, None, 5).reference(mixer)
        assert cached is SideInputs(m, None, 16).reference(mixer) and cached[0].shape[1] == 32
    optimizer = torch.optim.SGD(m.parameters(), lr=0.5)
    m(x).square().mean().backward()
    optimizer.step()
    with torch.no_grad():
        assert SideInputs(m, None, 5).reference(mixer) is not cached
        assert not torch.allclose(m(x), before)


def test_mixers_without_side_inputs_see_no_change():
    m = model("AMA")
    assert not any(block.side_inputs for block in m.blocks)

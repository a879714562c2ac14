"""Calibration: token windows; the block-by-block walk (inputs' Hessians, a modified block feeds the next)."""

import pytest
import torch
from torch import nn

from minihybrid import HybridLM, ModelConfig
from minihybrid.compress.calibrate import InputHessian, calibration_windows, for_each_block


def tiny_model(pattern="AA", seed=0) -> HybridLM:
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=61, d_model=32, n_heads=4, n_kv_heads=2, max_seq_len=32, pattern=pattern,
                         init_std=0.2)
    return HybridLM(config).eval()


def windows(n=8, seq_len=12, seed=0) -> torch.Tensor:
    return torch.randint(61, (n, seq_len), generator=torch.Generator().manual_seed(seed))


def direct_hessians(model, ids, **forward) -> dict[str, torch.Tensor]:
    """{full linear name: 2 X^T X / n} from every linear's inputs X (n, K) in one model forward (the first
    call of each linear, which for a "P" block's Q and K is its reference sequence slice)."""
    inputs = {}
    with torch.no_grad():
        model(ids, **forward)  # computes any reference sequence's states before the hooks
    hooks = [m.register_forward_pre_hook(lambda _, args, name=name: inputs.setdefault(name, args[0]))
             for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        model(ids, **forward)
    for hook in hooks:
        hook.remove()
    flat = {name: x.reshape(-1, x.shape[-1]) for name, x in inputs.items()}
    return {name: 2 * x.T @ x / x.shape[0] for name, x in flat.items()}


def collect(model, ids, change=None, batch_size=2):
    """Run the walk; returns ({(block, linear name): H}, final hidden states); change(i, block) edits."""
    seen = {}

    def visit(index, block, hessians):
        seen.update({(index, name): h for name, h in hessians.items()})
        if change is not None:
            change(index, block)

    return seen, for_each_block(model, ids, visit, batch_size=batch_size)


@pytest.mark.parametrize("pattern", ["AA", "AEP"])
def test_hessians_equal_direct_computation_and_walk_matches_forward(pattern):
    model, ids = tiny_model(pattern), windows()
    seen, final = collect(model, ids)
    direct = direct_hessians(model, ids)
    blocks = [name.split(".", 2) for name in direct if name != "head"]  # ["blocks", i, name in the block]
    assert set(seen) == {(int(index), name) for _, index, name in blocks}
    for (index, name), h in seen.items():
        assert h.dtype == torch.float32 and h.shape == direct[f"blocks.{index}.{name}"].shape
        torch.testing.assert_close(h, direct[f"blocks.{index}.{name}"], rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        hidden = model(ids, return_hidden=True)[1][-1]
    torch.testing.assert_close(final, hidden, rtol=1e-5, atol=1e-5)


def test_next_block_sees_the_modified_block():
    model, ids = tiny_model("AAA"), windows()

    def silence_block_0(index, block):  # zero outputs of the mixer and the ffn: block 0 becomes the identity
        if index == 0:
            for linear in (block.mixer.o_proj, block.ffn.down):
                linear.weight.zero_()

    reference = direct_hessians(tiny_model("AAA"), ids, skip_layers=[0])  # same weights, block 0 skipped
    untouched = direct_hessians(tiny_model("AAA"), ids)
    seen, _ = collect(model, ids, silence_block_0)
    for index in (1, 2):
        for name in ("mixer.q_proj", "mixer.o_proj", "ffn.down"):
            h = seen[(index, name)]
            torch.testing.assert_close(h, reference[f"blocks.{index}.{name}"], rtol=1e-4, atol=1e-5)
            assert not torch.allclose(h, untouched[f"blocks.{index}.{name}"], rtol=1e-2, atol=1e-3)


def test_input_hessian_running_mean():
    x = torch.randn(3, 7, 5)
    stat = InputHessian()
    stat.add(x[:1])
    stat.add(x[1:])
    flat = x.reshape(-1, 5)
    torch.testing.assert_close(stat.value(), 2 * flat.T @ flat / 21)
    with pytest.raises(ValueError, match="no inputs"):
        InputHessian().value()


def test_calibration_windows_are_disjoint_seeded_slices():
    stream = torch.arange(100)
    got = calibration_windows(6, 10, seed=3, stream=stream)
    assert got.shape == (6, 10) and got.dtype == torch.long
    assert (got[:, 0] % 10 == 0).all() and (got.diff(dim=1) == 1).all()  # aligned contiguous slices
    assert got[:, 0].unique().numel() == 6
    assert torch.equal(got, calibration_windows(6, 10, seed=3, stream=stream))
    assert not torch.equal(got, calibration_windows(6, 10, seed=4, stream=stream))
    assert calibration_windows(10, 10, stream=stream).shape == (10, 10)  # every window of the stream


@pytest.mark.parametrize("n_windows,seq_len,match", [
    (11, 10, "holds 10 windows of seq_len=10, fewer than n_windows=11"),
    (1, 101, "holds 0 windows"),
    (0, 10, "n_windows must be an int >= 1"),
    (2, 0, "seq_len must be an int >= 1"),
    (2.0, 10, "n_windows must be an int"),
])
def test_bad_window_counts(n_windows, seq_len, match):
    with pytest.raises(ValueError, match=match):
        calibration_windows(n_windows, seq_len, stream=torch.arange(100))


def test_bad_walk_inputs():
    model = tiny_model()
    with pytest.raises(ValueError, match="40 positions exceed max_seq_len=32"):
        for_each_block(model, torch.zeros(4, 40, dtype=torch.long), lambda *a: None)  # > max_seq_len
    with pytest.raises(ValueError, match="batch_size"):
        for_each_block(model, windows(), lambda *a: None, batch_size=0)


def test_fewer_tokens_than_a_linear_has_inputs_warn():
    model = tiny_model()
    widest = max(m.in_features for m in model.modules() if isinstance(m, nn.Linear))
    with pytest.warns(UserWarning, match=f"3 calibration tokens give a {widest}-input linear a Hessian"):
        for_each_block(model, torch.zeros(1, 3, dtype=torch.long), lambda *a: None)

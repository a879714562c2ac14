"""Training loop (schedule, loss goes down, checkpoints resume exactly) and decoding."""

from types import SimpleNamespace

import pytest
import torch

from minihybrid import HybridLM, ModelConfig
from minihybrid.data import IGNORE
from minihybrid.generate import generate, pick_next
from minihybrid.train import TrainConfig, accuracy, evaluate, load_checkpoint, lr_at, train


def small_model(seed=0, pattern="AS"):
    torch.manual_seed(seed)
    return HybridLM(ModelConfig(vocab_size=32, d_model=32, n_heads=2, pattern=pattern, max_seq_len=128))


def periodic_stream(n, period=7):
    """A learnable stream: a repeating pattern of `period` tokens."""
    return torch.arange(n) % period + 3


def copy_examples(n, seed):
    """Examples whose only scored label asks for the first token again at the end (a one-token recall)."""
    x = torch.randint(3, 32, (n, 10), generator=torch.Generator().manual_seed(seed))
    labels = torch.full_like(x, IGNORE)
    labels[:, -1] = x[:, 0]
    return x, labels


def test_training_on_examples_scores_only_their_labels():
    model = small_model(pattern="AA")
    train_set, val_set = copy_examples(512, 0), copy_examples(64, 1)
    before = accuracy(model, val_set)
    cfg = TrainConfig(steps=150, batch_size=32, lr=1e-2, warmup_steps=10, eval_every=150, eval_batches=2,
                      progress=False)
    history = train(model, train_set, val_set, cfg)
    assert accuracy(model, val_set) > 0.9 > before
    assert history.val_loss[-1] == pytest.approx(evaluate(model, val_set, batch_size=32, seq_len=10,
                                                          max_batches=2))


def test_accuracy_per_example_needs_every_scored_label():
    model = small_model()
    x = torch.randint(3, 32, (4, 6), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        predicted = model(x).argmax(-1)
    labels = torch.full_like(x, IGNORE)
    labels[:, 2:4] = predicted[:, 2:4]
    labels[0, 3] = (predicted[0, 3] + 1) % 32  # one wrong token in example 0
    assert accuracy(model, (x, labels)) == pytest.approx(7 / 8)
    assert accuracy(model, (x, labels), per_example=True) == pytest.approx(3 / 4)


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(55, cfg) == pytest.approx(0.55)
    assert lr_at(100, cfg) == pytest.approx(0.1)


def test_training_learns_a_periodic_stream():
    model = small_model()
    ids = periodic_stream(4000)
    cfg = TrainConfig(steps=60, batch_size=8, seq_len=32, lr=1e-2, warmup_steps=5, eval_every=30,
                      eval_batches=2, progress=False)
    history = train(model, ids, periodic_stream(500), cfg)
    assert history.val_loss[-1] < 0.2 < history.train_loss[0]
    assert history.tokens_per_second > 0 and history.eval_steps == [30, 60]


def test_checkpoint_resume_is_exact(tmp_path):
    ids, val = periodic_stream(3000, 11), periodic_stream(400, 11)
    kw = {"batch_size": 4, "seq_len": 16, "lr": 5e-3, "warmup_steps": 2, "eval_every": 5, "eval_batches": 1,
          "progress": False}
    straight = small_model()
    train(straight, ids, val, TrainConfig(steps=10, **kw))

    def interrupt(history):
        raise KeyboardInterrupt

    ckpt = tmp_path / "run.safetensors"
    with pytest.raises(KeyboardInterrupt):  # a run stopped right after its checkpoint at step 5
        train(small_model(), ids, val, TrainConfig(steps=10, checkpoint=str(ckpt), **kw), on_eval=interrupt)
    resumed = small_model(seed=123)  # different init: everything must come from the checkpoint
    history = train(resumed, ids, val, TrainConfig(steps=10, checkpoint=str(ckpt), **kw))
    assert history.eval_steps == [5, 10]
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_capped_evaluation_spreads_windows_over_the_whole_stream():
    model = small_model()
    stream = torch.cat([periodic_stream(2000), torch.full((2000,), 30)])  # the second half is different
    head_only = evaluate(model, stream[:2000], batch_size=2, seq_len=16, max_batches=4)
    spread = evaluate(model, stream, batch_size=2, seq_len=16, max_batches=4)
    everything = evaluate(model, stream, batch_size=2, seq_len=16)
    assert abs(spread - everything) < abs(head_only - everything)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_checkpoint(bad, small_model())


def test_checkpoint_of_another_model_is_refused(tmp_path):
    ckpt = tmp_path / "a.safetensors"
    kw = {"batch_size": 2, "seq_len": 8, "eval_every": 2, "eval_batches": 1, "progress": False,
          "checkpoint": str(ckpt)}
    train(small_model(), periodic_stream(500), periodic_stream(100), TrainConfig(steps=2, **kw))
    with pytest.raises(ValueError, match="does not fit this model"):
        load_checkpoint(ckpt, small_model(pattern="ASA"))


@pytest.mark.parametrize("pattern", ["AA", "AS"])
def test_cached_greedy_equals_uncached_greedy(pattern):
    model = small_model(pattern=pattern)
    prompt = torch.randint(0, 32, (2, 9), generator=torch.Generator().manual_seed(1))
    cached = generate(model, prompt, 80, use_cache=True).tokens
    uncached = generate(model, prompt, 80, use_cache=False).tokens
    assert torch.equal(cached, uncached)


def test_sampling_is_seeded_and_top_k_restricts():
    model = small_model()
    prompt = torch.tensor([[3, 4, 5]])
    a = generate(model, prompt, 20, temperature=1.0, top_k=5, seed=7).tokens
    b = generate(model, prompt, 20, temperature=1.0, top_k=5, seed=7).tokens
    assert torch.equal(a, b)
    logits = torch.tensor([[0.0, 5.0, 1.0, 4.0]])
    draws = {pick_next(logits, 1.0, top_k=2).item() for _ in range(200)}
    assert draws == {1, 3}


def test_eos_stops_and_bad_arguments_raise():
    model = small_model()
    prompt = torch.tensor([[3, 4]])
    first = generate(model, prompt, 1).tokens[0, -1].item()
    assert generate(model, prompt, 10, eos_id=first).new_tokens == 1
    with pytest.raises(ValueError, match="max_seq_len"):
        generate(model, prompt, 200)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, prompt, 2, temperature=-1)


class Scripted(torch.nn.Module):
    """A stand-in model whose greedy choice at position t of row b is script[b, t]."""

    def __init__(self, script):
        super().__init__()
        self.script = script
        self.config = SimpleNamespace(max_seq_len=script.shape[1], vocab_size=10)

    def check_ids(self, idx, cache=None, name="idx"):
        pass

    def forward(self, idx, cache=None, last_only=False):
        return torch.nn.functional.one_hot(self.script[:, idx.shape[1] - 1:idx.shape[1]], 10).float()


def test_finished_rows_are_padded_with_eos():
    eos = 0
    script = torch.tensor([[5, 0, 7, 7, 7, 7, 7, 7], [5, 6, 6, 6, 0, 8, 8, 8]])  # row 0 ends first
    out = generate(Scripted(script), torch.tensor([[1], [1]]), 6, eos_id=eos, use_cache=False)
    assert out.tokens.tolist() == [[1, 5, 0, eos, eos, eos], [1, 5, 6, 6, 6, 0]]  # unpadded: 7s


def test_a_refused_prompt_leaves_the_model_in_training_mode():
    model = small_model().train()
    with pytest.raises(ValueError, match="token id 99 is outside"):
        generate(model, torch.tensor([[3, 99]]), 4)
    assert model.training
    generate(model, torch.tensor([[3, 4]]), 2)
    assert model.training

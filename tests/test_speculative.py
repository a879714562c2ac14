"""Self-speculative decoding: greedy output identical to plain greedy decoding for every draft and skip
policy, the cache after rollbacks, the acceptance rules, sampling that keeps the full model's distribution,
the statistics, and refused input.

Dimensions: T prompt tokens, n new tokens, V vocabulary, L blocks.
"""

import copy
import itertools
import math

import pytest
import torch

from minihybrid import HybridLM, ModelConfig
from minihybrid.compress import QuantScheme, quantize_model
from minihybrid.generate import generate
from minihybrid.layer_select import CLaSp, FixedSkip, NoSkip, RandomSkip
from minihybrid.speculative import accept_greedy, accept_sampled, expected_speedup, speculative_generate

WINDOW = {"S": {"window": 4}}
POLICIES = {
    "none": NoSkip,
    "fixed": lambda: FixedSkip([1, 2]),
    "random": lambda: RandomSkip(2, seed=2),  # blocks 0 and 3
    "clasp every round": lambda: CLaSp(2, interval=1),
    "clasp every 3": lambda: CLaSp(1, interval=3),
}


def lm(pattern: str = "AAAA", vocab: int = 32, seed: int = 0, dtype=torch.float64, **changes) -> HybridLM:
    torch.manual_seed(seed)
    config = ModelConfig(**{"vocab_size": vocab, "d_model": 32, "n_heads": 4, "n_kv_heads": 2,
                            "pattern": pattern, "max_seq_len": 128, "init_std": 0.2, **changes})
    return HybridLM(config).to(dtype).eval()


def perturbed(model: HybridLM, scale: float, seed: int = 1, cls=HybridLM) -> HybridLM:
    """A draft: the model's weights plus Gaussian noise of `scale`, as `cls`."""
    draft = cls(model.config).to(next(model.parameters()).dtype).eval()
    draft.load_state_dict(model.state_dict())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in draft.parameters():
            p += scale * torch.randn(p.shape, generator=g, dtype=p.dtype)
    return draft


class Contrarian(HybridLM):
    """A draft that writes its own (wrong) keys and values and always proposes the token `proposal`."""

    proposal = 0

    def forward(self, *args, **kwargs):
        logits = super().forward(*args, **kwargs)
        return torch.zeros_like(logits).index_fill_(-1, torch.tensor([self.proposal]), 1.0)


class Recorder(FixedSkip):
    """A fixed skip set that asks for the full model's states, to keep (pos, a copy of the cache, states
    (L + 1, d)) after the prefill and after every round."""

    needs_hidden = True

    def __init__(self, skip_set=()):
        super().__init__(skip_set)

    def start(self, model):
        super().start(model)
        self.seen = []

    def update(self, model, cache, full_states, pos):
        self.seen.append((pos, copy.deepcopy(cache), full_states.clone()))


def prompt_of(length: int, vocab: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, vocab, (1, length), generator=torch.Generator().manual_seed(seed))


def assert_cache_holds(cache, model: HybridLM, tokens: torch.Tensor) -> None:
    """The cache holds exactly what one prefill of tokens (1, P) writes: nothing at positions >= P (no key of
    a rejected draft), and the same keys and values below."""
    length = tokens.shape[1]
    assert cache.pos == length
    reference = model.init_cache(1, cache.max_len)
    with torch.inference_mode():
        model(tokens, cache=reference)
    for got, want in zip(cache.layers, reference.layers):
        assert got.length == length
        if got.window is None:
            held = slice(0, length)
        else:  # ring: every slot still held is a position < P in its slot, and the window is all there
            held = got.key_pos >= 0
            positions = got.key_pos[held]
            assert (positions < length).all() and torch.equal(positions, want.key_pos[held])
            assert set(range(max(length - got.window + 1, 0), length)) <= set(positions.tolist())
        torch.testing.assert_close(got.k[:, :, held], want.k[:, :, held], atol=1e-12, rtol=0)
        torch.testing.assert_close(got.v[:, :, held], want.v[:, :, held], atol=1e-12, rtol=0)


# Greedy: the output is plain greedy decoding's


@pytest.mark.parametrize("draft", ["self", "perturbed", "int8"])
@pytest.mark.parametrize("policy", POLICIES.values(), ids=POLICIES.keys())
def test_greedy_output_is_plain_greedy(policy, draft):
    model = lm(dtype=torch.float32 if draft == "int8" else torch.float64)
    drafts = {"self": None, "perturbed": perturbed(model, 0.05),
              "int8": quantize_model(copy.deepcopy(model), QuantScheme(8, None))}
    prompt = prompt_of(5)
    expected = generate(model, prompt, 17).tokens
    drafted = accepted = 0
    for n, threshold, max_draft in itertools.product((1, 7, 17), (0, 0.7, 1), (1, 8)):
        out = speculative_generate(model, prompt, n, draft_model=drafts[draft], skip=policy(),
                                   threshold=threshold, max_draft=max_draft)
        assert torch.equal(out.tokens, expected[:, :5 + n]), (n, threshold, max_draft)
        assert out.new_tokens == n
        drafted, accepted = drafted + out.stats.drafted, accepted + out.stats.accepted
    assert accepted <= drafted
    if type(policy()) is NoSkip:
        assert accepted > 0, "a draft running every block is often right"
    if draft == "perturbed" or type(policy()) is not NoSkip:
        assert accepted < drafted, "some drafts rejected: the rollbacks are exercised"


@pytest.mark.parametrize("max_draft", [1, 3, 8])
def test_a_draft_that_is_the_model_is_always_accepted(max_draft):
    """Every drafted token is the model's own choice: acceptance 1, and each round adds max_draft + 1 tokens
    (the first new token comes from the prefill)."""
    model = lm()
    prompt = prompt_of(4)
    expected = generate(model, prompt, 23).tokens
    for n in (1, 2, 9, 10, 23):
        out = speculative_generate(model, prompt, n, threshold=0, max_draft=max_draft)
        assert torch.equal(out.tokens, expected[:, :4 + n])
        stats = out.stats
        assert stats.rounds == math.ceil((n - 1) / (max_draft + 1))
        assert stats.accepted == stats.drafted == n - 1 - stats.rounds
        assert stats.acceptance_rate == (1.0 if n > 2 else 0.0)


@pytest.mark.parametrize("threshold", [0, 0.3, 0.6, 1])
def test_drafting_stops_after_a_token_below_the_threshold(threshold):
    """With the model as its own draft every token is accepted, so each round's length follows from the
    model's top-1 probabilities alone: a round drafts until a token's falls below the threshold, max_draft
    tokens, or the token before the last one."""
    model, prompt, n, max_draft = lm(init_std=0.5), prompt_of(4), 40, 5
    out = speculative_generate(model, prompt, n, threshold=threshold, max_draft=max_draft)
    with torch.inference_mode():
        top1 = model(out.tokens).softmax(-1).amax(-1)[0, 3:]  # (n + 1,): new token i's top-1 at [i]
    written, rounds, drafted = 1, 0, 0
    while written < n:
        m = 0
        while m < min(max_draft, n - written - 1):
            m += 1
            if top1[written + m - 1] < threshold:
                break
        written, rounds, drafted = written + m + 1, rounds + 1, drafted + m
    assert (out.stats.rounds, out.stats.drafted, out.stats.accepted) == (rounds, drafted, drafted)
    assert threshold not in (0.3, 0.6) or 0 < (top1 < threshold).float().mean() < 1, "the threshold acts"


@pytest.mark.parametrize("pattern, options", [("AAAA", {}), ("ASAS", WINDOW)], ids=["full", "window 4"])
def test_a_draft_that_is_always_wrong_still_gives_plain_greedy(pattern, options):
    """Its keys and values at drafted positions must never survive a rollback, after any round. 95 positions
    wrap the windowed ring buffer (window 4 + 64 slots of slack)."""
    model = lm(pattern, mixer_options=options)
    draft = perturbed(model, 0.05, cls=Contrarian)
    prompt = prompt_of(5)
    expected = generate(model, prompt, 90).tokens
    draft.proposal = min(set(range(32)) - set(expected[0, 5:].tolist()))  # a token greedy never picks
    recorder = Recorder()
    out = speculative_generate(model, prompt, 90, draft_model=draft, skip=recorder, threshold=0, max_draft=3)
    assert torch.equal(out.tokens, expected)
    assert out.stats.accepted == 0 and out.stats.rounds == 89
    assert out.stats.drafted == sum(min(3, left - 1) for left in range(1, 90))
    for _, cache, _ in recorder.seen:
        assert_cache_holds(cache, model, out.tokens[:, :cache.pos])


@pytest.mark.parametrize("pattern, options", [("AAAA", {}), ("ASAS", WINDOW)], ids=["full", "window 4"])
@pytest.mark.parametrize("draft", ["self skipping", "perturbed"])
def test_cache_and_states_after_every_round(pattern, options, draft):
    """After prefill and after every round the policy sees a cache holding what one prefill of the tokens so
    far, minus the last one (not in the cache yet), writes, and the full model's states of the token just
    before it (position cache.pos - 1); at the end the cache's pos is T + n - 1."""
    model = lm(pattern, mixer_options=options)
    recorder = Recorder([1] if draft == "self skipping" else [])
    draft_model = perturbed(model, 0.05) if draft == "perturbed" else None
    prompt = prompt_of(6)
    out = speculative_generate(model, prompt, 80, draft_model=draft_model, skip=recorder, threshold=0.3,
                               max_draft=5)
    assert torch.equal(out.tokens, generate(model, prompt, 80).tokens)
    assert 0 < out.stats.accepted < out.stats.drafted
    with torch.inference_mode():
        _, hidden = model(out.tokens, return_hidden=True)
    full = torch.stack([h[0] for h in hidden], dim=1)  # (T + n, L + 1, d)
    assert len(recorder.seen) == out.stats.rounds + 1 and recorder.seen[-1][1].pos == 6 + 80 - 1
    for pos, cache, states in recorder.seen:
        assert pos == cache.pos - 1
        assert_cache_holds(cache, model, out.tokens[:, :cache.pos])
        torch.testing.assert_close(states, full[pos], atol=1e-10, rtol=0)


def test_a_new_token_count_of_one_runs_no_round():
    model = lm()
    recorder = Recorder()
    out = speculative_generate(model, prompt_of(3), 1, skip=recorder)
    assert torch.equal(out.tokens, generate(model, prompt_of(3), 1).tokens)
    assert out.stats.rounds == out.stats.drafted == 0 and out.stats.skip_sets == []
    assert [(pos, cache.pos) for pos, cache, _ in recorder.seen] == [(2, 3)]


def test_the_models_mode_is_restored():
    model, draft = lm().train(), lm(seed=1).train()
    speculative_generate(model, prompt_of(3), 4, draft_model=draft)
    assert model.training and draft.training


# Statistics


def test_stats_add_up():
    model = lm()
    out = speculative_generate(model, prompt_of(5), 40, skip=CLaSp(2, interval=2), threshold=0.5, max_draft=4)
    s = out.stats
    assert s.drafted >= s.accepted > 0 and s.rounds > 0
    assert out.new_tokens == 40 == 1 + s.rounds + s.accepted, "each round adds its accepted tokens + 1"
    assert s.acceptance_rate == s.accepted / s.drafted and s.mean_accepted == s.accepted / s.rounds
    assert len(s.skip_sets) == s.rounds and all(len(skip) == 2 for skip in s.skip_sets)
    times = [s.draft_s, s.verify_s, s.select_s, s.other_s]
    assert min(times) >= 0 and s.select_s > 0 and out.decode_seconds == s.total_s
    assert sum(times) == pytest.approx(s.total_s) and out.prefill_seconds > 0


def test_empty_stats_are_zero():
    s = speculative_generate(lm(), prompt_of(3), 1).stats
    assert (s.acceptance_rate, s.mean_accepted) == (0.0, 0.0)


def test_expected_speedup_by_hand():
    # a = 0.5, n = 2: E = (1 - 0.125) / 0.5 = 1.75 tokens for 2 * 0.1 + 1.2 = 1.4 steps
    assert expected_speedup(0.5, 2, 0.1, 1.2) == pytest.approx(1.25)
    assert expected_speedup(1.0, 2, 0.1, 1.2) == pytest.approx(3 / 1.4)  # a = 1: n + 1 tokens
    assert expected_speedup(1 - 1e-9, 2, 0.1, 1.2) == pytest.approx(3 / 1.4)  # continuous at a = 1
    assert expected_speedup(0.0, 4, 0.25, 1.0) == pytest.approx(0.5)  # only the correction: 1 token, 2 steps
    assert expected_speedup(0.8, 0, 0.3, 1.0) == pytest.approx(1.0)  # nothing drafted: plain decoding


# The acceptance rules


@pytest.mark.parametrize("drafted, target, expected", [
    ([4, 1, 6], [4, 1, 6, 2], (3, 2)),  # all accepted: the bonus token
    ([4, 1, 6], [0, 1, 6, 2], (0, 0)),  # the first rejected: the model's token instead
    ([4, 1, 6], [4, 5, 6, 2], (1, 5)),
    ([], [7], (0, 7)),                  # nothing drafted
])
def test_accept_greedy_by_hand(drafted, target, expected):
    assert accept_greedy(torch.tensor(drafted, dtype=torch.long), torch.tensor(target)) == expected


def distributions(rows: int, vocab: int, seed: int) -> torch.Tensor:
    return torch.softmax(1.5 * torch.randn(rows, vocab, generator=torch.Generator().manual_seed(seed),
                                           dtype=torch.float64), dim=-1)


def output_distribution(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The exact distribution (V,)*(n+1) of the n + 1 tokens written from drafts d ~ q (n, V): every drafted
    sequence and every acceptance count, with `accept_sampled`'s own branches (u = 0 accepts whenever
    p > 0, u = 1 rejects unless p >= q); after a round that wrote fewer, the next tokens follow p's rows
    (the next rounds, in a toy where p does not depend on the context)."""
    n, vocab = q.shape
    out = torch.zeros((vocab,) * (n + 1), dtype=torch.float64)
    for drafted in itertools.product(range(vocab), repeat=n):
        d = torch.tensor(drafted, dtype=torch.long)
        ratio = (p[torch.arange(n), d] / q[torch.arange(n), d]).clamp(max=1)
        weight = q[torch.arange(n), d].prod()
        for accepted in range(n + 1):
            u = torch.tensor([0.0] * accepted + [1.0] * (n - accepted), dtype=torch.float64)
            k, dist = accept_sampled(d, q, p, u)
            if k != accepted:
                continue  # a ratio >= 1: this rejection cannot happen
            chance = ratio[:accepted].prod() * (1 - ratio[accepted] if accepted < n else 1)
            tail = dist
            for row in p[accepted + 1:]:
                tail = tail[..., None] * row
            out[drafted[:accepted]] += weight * chance * tail
    return out


@pytest.mark.parametrize("n, vocab, seed", [(1, 5, 0), (2, 4, 1), (3, 3, 2)])
def test_accept_sampled_writes_the_full_models_distribution(n, vocab, seed):
    q, p = distributions(n, vocab, seed), distributions(n + 1, vocab, seed + 10)
    expected = p[0]
    for row in p[1:]:
        expected = expected[..., None] * row
    torch.testing.assert_close(output_distribution(q, p), expected, atol=1e-12, rtol=0)


def test_accept_sampled_when_draft_and_model_agree_and_when_all_are_accepted():
    q = distributions(2, 6, 3)
    p = torch.cat((q, distributions(1, 6, 4)))
    u = torch.tensor([0.999999, 0.5], dtype=torch.float64)
    k, dist = accept_sampled(torch.tensor([1, 4]), q, p, u)
    assert k == 2 and torch.equal(dist, p[2]), "p == q: every draft accepted, then the bonus row"
    k, dist = accept_sampled(torch.tensor([1, 4]), q, p, torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert k == 0 and torch.equal(dist, p[0]), "an empty residual max(p - q, 0) falls back to p"
    p = distributions(3, 6, 5)
    k, dist = accept_sampled(torch.tensor([1, 4]), q, p, torch.zeros(2, dtype=torch.float64))
    assert k == 2 and torch.equal(dist, p[2])


# Sampling: every token distributed as the full model's


def new_token_distribution(model: HybridLM, prompt: torch.Tensor, m: int) -> torch.Tensor:
    """Exact P(t1, ..., tm) (V,)*m of the first m new tokens, from the model's conditionals on each prefix."""
    vocab, length = model.config.vocab_size, prompt.shape[1]
    prefixes = torch.tensor(list(itertools.product(range(vocab), repeat=m - 1)))
    with torch.inference_mode():
        ids = torch.cat((prompt.expand(len(prefixes), -1), prefixes), dim=1)
        probs = model(ids).softmax(-1)[:, length - 1:]  # (V^(m-1), m, V)
    chance = probs[:, :-1].gather(-1, prefixes[..., None])[..., 0].prod(-1)
    return (chance[:, None] * probs[:, -1]).view((vocab,) * m)


def total_variation(a: torch.Tensor, b: torch.Tensor) -> float:
    return 0.5 * (a - b).abs().sum().item()


def test_sampling_keeps_the_full_models_distribution():
    """2000 seeded runs of a vocabulary-8, 2-block model drafting two tokens with block 1 skipped (about half
    accepted): each pair of consecutive new tokens (t1, t2), (t2, t3), (t3, t4) — the first round's draft,
    its second draft or correction, its bonus — follows the exact distribution within total variation 0.06
    (measured 0.02-0.03; exact samples of 2000 give about 0.025, at most 0.04 in 200 trials), while pairs
    whose second token came from the draft would be 0.5 away."""
    model = lm("AA", vocab=8, d_model=16, n_heads=2, n_kv_heads=None, max_seq_len=16, init_std=1.0)
    prompt = torch.tensor([[1, 2, 3]])
    runs = 2000
    counts = torch.zeros(8, 8, 8, 8, dtype=torch.float64)
    drafted = accepted = 0
    for seed in range(runs):
        out = speculative_generate(model, prompt, 4, skip=FixedSkip([1]), temperature=1.0, seed=seed,
                                   threshold=0, max_draft=2)  # round 1 drafts two tokens
        counts[tuple(out.tokens[0, 3:])] += 1
        drafted, accepted = drafted + out.stats.drafted, accepted + out.stats.accepted
    assert 0.2 < accepted / drafted < 0.8, "both acceptance and the residual are exercised"
    exact = new_token_distribution(model, prompt, 4)
    for first in range(3):
        others = tuple(dim for dim in range(4) if dim not in (first, first + 1))
        pair = f"t{first + 1}, t{first + 2}"
        assert total_variation(counts.sum(others) / runs, exact.sum(others)) < 0.06, pair
    with torch.inference_mode():
        ids = torch.cat((prompt.expand(8, -1), torch.arange(8)[:, None]), dim=1)
        draft_second = model(ids, skip_layers=[1]).softmax(-1)[:, -1]  # q(t2 | t1)
    pairs = exact.sum((2, 3))
    assert total_variation(pairs.sum(1)[:, None] * draft_second, pairs) > 0.3


def test_sampling_is_seeded():
    model = lm(vocab=8)
    kw = {"skip": FixedSkip([0, 3]), "temperature": 0.8, "top_k": 5, "max_draft": 3}
    a = speculative_generate(model, prompt_of(3, 8), 30, seed=7, **kw)
    b = speculative_generate(model, prompt_of(3, 8), 30, seed=7, **kw)
    assert torch.equal(a.tokens, b.tokens) and a.stats.accepted == b.stats.accepted
    others = {tuple(speculative_generate(model, prompt_of(3, 8), 30, seed=s, **kw).tokens[0].tolist())
              for s in range(4)}
    assert len(others) > 1


# Refused input


def windowed() -> HybridLM:
    return lm("AS", mixer_options=WINDOW)


def spec(model=None, prompt=None, n=4, **kwargs):
    return lambda: speculative_generate(lm() if model is None else model(),
                                        prompt_of(3) if prompt is None else prompt, n, **kwargs)


@pytest.mark.parametrize("call, message", [
    (spec(skip=FixedSkip([4])), "not block indices in 0..3"),
    (spec(skip=FixedSkip([-1, 2])), "not block indices"),
    (spec(skip=FixedSkip(range(4))), "would skip all 4 blocks"),
    (spec(skip=RandomSkip(4)), "would skip all 4 blocks"),
    (spec(skip=CLaSp(5)), "would skip all 4 blocks"),
    (spec(threshold=-0.1), "threshold must be"),
    (spec(threshold=1.5), "threshold must be a probability"),
    (spec(threshold=float("nan")), "threshold must be"),
    (spec(max_draft=0), "max_draft must be"),
    (spec(n=0), "max_new_tokens must be"),
    (spec(temperature=-1.0), "temperature must be"),
    (spec(n=126), "exceeds max_seq_len=128"),
    (spec(prompt=prompt_of(3).expand(2, -1)), "batch 1"),
    (spec(prompt=prompt_of(3).float()), "torch.long"),
    (spec(draft_model=lm(vocab=40)), "vocabulary"),
    (spec(draft_model=lm("AAA")), "cache layout"),
    (spec(draft_model=lm(n_kv_heads=4)), "cache layout"),
    (spec(draft_model=lm(head_dim=4)), "cache layout"),
    (spec(lambda: lm("AM", mixer_options={"M": {"d_state": 8, "head_dim": 8}})), "recurrent state"),
    (spec(windowed, skip=CLaSp(1)), "full-attention KV caches"),
], ids=["skip out of range", "skip negative", "skip all", "random all", "clasp all", "threshold < 0",
        "threshold > 1", "threshold nan", "max_draft 0", "no new tokens", "temperature < 0", "too long",
        "batch 2", "float prompt", "draft vocabulary", "draft layers", "draft kv heads", "draft head dim",
        "SSM mixer", "clasp windowed"])
def test_bad_input_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_draft_of_another_dtype_is_refused_by_name():
    with pytest.raises(ValueError, match="draft model's dtype torch.float32 is not the model's"):
        speculative_generate(lm(), prompt_of(3), 4, draft_model=lm(dtype=torch.float32))


def test_a_full_attention_draft_of_a_windowed_model_is_refused_by_name():
    with pytest.raises(ValueError, match="draft model's block 1 does not write the model's cache layout"):
        speculative_generate(windowed(), prompt_of(3), 4, draft_model=lm("AA"))


def test_a_draft_too_short_for_the_generation_is_refused_by_name():
    with pytest.raises(ValueError, match="exceeds the draft model's max_seq_len=8"):
        speculative_generate(lm(), prompt_of(3), 6, draft_model=lm(max_seq_len=8))


@pytest.mark.parametrize("options, message", [
    ({"skip": [1, 2]}, "skip must be a minihybrid.layer_select policy .* got list"),
    ({"draft_model": "x"}, "draft_model must be a HybridLM .* got str"),
], ids=["skip list", "draft string"])
def test_arguments_of_the_wrong_type_are_refused(options, message):
    with pytest.raises(TypeError, match=message):
        speculative_generate(lm(), prompt_of(3), 4, **options)


@pytest.mark.parametrize("args, message", [
    ((0.5, 2, 0.1, 0), "verify_cost must be a number > 0"),
    ((1.5, 2, 0.1, 1.0), "acceptance must be a probability"),
    ((-0.1, 2, 0.1, 1.0), "acceptance must be"),
    ((0.5, -1, 0.1, 1.0), "n_draft must be"),
    ((0.5, 2, -0.1, 1.0), "draft_cost must be"),
    ((float("nan"), 2, 0.1, 1.0), "acceptance must be"),
], ids=["verify 0", "acceptance > 1", "acceptance < 0", "n negative", "c negative", "acceptance nan"])
def test_expected_speedup_refuses_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        expected_speedup(*args)


def test_a_draft_longer_than_the_window_slack_is_refused_by_name():
    with pytest.raises(ValueError, match="max_draft"):
        speculative_generate(windowed(), prompt_of(5), 100, threshold=0, max_draft=70)

"""Attention with borrowed queries and keys (minihybrid/layers/borrowed_qk.py): R and P read a fixed
reference sequence's states, E the static embeddings; V always comes from the block's own input."""

import pytest
import torch

from minihybrid import HybridLM, ModelConfig
from minihybrid.side_inputs import SideInputs


def model(pattern, vocab_size=50, **options):
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=vocab_size, d_model=32, n_heads=4, n_kv_heads=2, pattern=pattern,
                         max_seq_len=40, mixer_options=options)
    return HybridLM(config).eval()


def captured_qk_inputs(m, x):
    """The (B or 1, T, d) tensor every block's attention projected Q and K from, in one forward of x (the
    main run's call comes last: a reference run happens inside the first block that needs it)."""
    seen = {}
    for i, block in enumerate(m.blocks):
        def attend(qk_in, v_in, cache, start_pos, i=i, original=block.mixer.attend):
            seen[i] = qk_in
            return original(qk_in, v_in, cache, start_pos)
        block.mixer.attend = attend
    m(x)
    return seen


@pytest.mark.parametrize("pattern", ["RR", "PP", "AR"])
def test_reference_variants_read_the_same_qk_input_whatever_the_sequence(pattern):
    m = model(pattern)
    first = captured_qk_inputs(m, torch.randint(0, 50, (2, 30)))
    second = captured_qk_inputs(m, torch.randint(0, 50, (3, 30)))
    layer = 1
    assert first[layer].shape == (1, 30, 32)
    torch.testing.assert_close(first[layer], second[layer])


def test_the_reference_run_is_plain_attention_over_the_reference_sequence():
    m, plain = model("RR"), model("AA")
    plain.load_state_dict(m.state_dict())
    mixer = m.blocks[1].mixer
    x = mixer.reference_embeddings(m.embed, 40)
    expected = []
    for block in plain.blocks:
        expected.append(block.mixer_norm(x))
        x = block(x)
    with torch.no_grad():
        states = SideInputs(m, None, 40).reference(mixer)
    for got, want in zip(states, expected):
        torch.testing.assert_close(got, want)


def test_fixed_passage_is_embedded_by_the_model():
    passage = "Now is the winter of our discontent made glorious summer by this sun of York"
    m = model("PP", vocab_size=256, P={"passage": passage})
    mixer = m.blocks[0].mixer
    assert mixer.passage_ids.tolist() == list(passage.encode())[:40]
    torch.testing.assert_close(mixer.reference_embeddings(m.embed, 7), m.embed(mixer.passage_ids[:7])[None])


def test_static_embeddings_variant_reads_the_token_embeddings():
    m = model("AE")
    x = torch.randint(0, 50, (2, 12))
    qk_in = captured_qk_inputs(m, x)[1]
    torch.testing.assert_close(qk_in, m.blocks[1].mixer.embed_norm(m.embed(x)))


def test_values_still_come_from_the_sequence():
    m = model("RR")
    x = torch.randint(0, 50, (1, 20))
    assert not torch.allclose(m(x), m((x + 1) % 50))


@pytest.mark.parametrize("options,match", [
    ({"passage": "too short"}, "passage has 9 tokens, shorter than the context"),
    ({"passage": [1, 2, 99] * 20}, r"token ids in 0..49"),
])
def test_bad_passages_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        model("P", P=options)

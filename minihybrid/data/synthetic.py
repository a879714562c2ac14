"""Seeded synthetic tasks that separate attention from fixed-state recurrent mixers.

Every task returns (inputs, labels), both torch.long of shape (num_examples, seq_len). Labels are next-token
targets aligned with the inputs: labels[i, t] is what the model should predict after reading inputs[i, :t+1],
and -100 (ignored by F.cross_entropy) where a position is not scored. The same seed gives the same tensors.

    mqar(...)       multi-query associative recall, zoology's multiquery_ar format
    passkey(...)    a number hidden at a chosen depth of filler text, asked for at the end
    induction(...)  a segment of distinct random tokens followed by its copy (A B ... A -> B)
"""

import itertools

import torch

from minihybrid.checks import check_int

IGNORE = -100


def _distinct(num_rows: int, low: int, high: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """(num_rows, k) long: each row k distinct values drawn uniformly from [low, high), in random order."""
    population = high - low
    if k * k <= 2 * population:
        # Few draws from many values: draw with replacement, redraw the rows that repeat a value. Exact, and a
        # row is accepted with probability about exp(-k^2 / (2 population)) >= 1/e, so few rounds are needed.
        out = torch.randint(low, high, (num_rows, k), generator=generator)
        redo = torch.arange(num_rows)
        while True:
            sorted_rows = out[redo].sort(dim=1).values
            redo = redo[(sorted_rows[:, 1:] == sorted_rows[:, :-1]).any(dim=1)]
            if redo.numel() == 0:
                return out
            out[redo] = torch.randint(low, high, (redo.numel(), k), generator=generator)
    # Many draws: the top k of uniform scores over the whole population, in chunks of ~16M scores.
    chunk = max(1, 2**24 // population)
    parts = []
    for start in range(0, num_rows, chunk):
        scores = torch.rand(min(chunk, num_rows - start), population, generator=generator)
        parts.append(scores.topk(k, dim=1).indices + low)
    return torch.cat(parts)


def mqar(
    num_examples: int,
    seq_len: int,
    num_kv_pairs: int,
    vocab_size: int = 8192,
    seed: int = 0,
    power_a: float = 0.01,
    random_non_queries: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-query associative recall (Arora et al., Zoology, 2023) in the format of zoology's multiquery_ar.

    Each example is num_kv_pairs key-value pairs, then a query region where every key appears once more, at
    even offsets. Keys are distinct, from [1, vocab_size // 2); values are distinct, from
    [vocab_size // 2, vocab_size). A query's offset g (in pairs) is drawn without replacement with
    P(g) ~ (g + 1) ** (power_a - 1), so small power_a puts most queries right after the pairs. The label at a
    query's position is the value paired with that key; every other label is -100. The other query-region
    tokens are uniform over the vocab (random_non_queries) or 0; token 0 is never a key.

    Example (vocab_size=12, seq_len=16, num_kv_pairs=2, random_non_queries=False):

        inputs  2    8    4    7    0    0    4    0    0    0    0    0    2    0    0    0
        labels  -100 -100 -100 -100 -100 -100 7    -100 -100 -100 -100 -100 8    -100 -100 -100

    Requires an even seq_len >= 4 * num_kv_pairs (zoology's bound) and num_kv_pairs < vocab_size // 2.
    """
    for name, value in (("num_examples", num_examples), ("seq_len", seq_len), ("num_kv_pairs", num_kv_pairs),
                        ("vocab_size", vocab_size)):
        check_int(name, value)
    if seq_len % 2:
        raise ValueError(f"seq_len must be even (queries sit at even offsets), got {seq_len}")
    if seq_len < 4 * num_kv_pairs:
        raise ValueError(
            f"seq_len={seq_len} is too short for {num_kv_pairs} pairs: needs >= 4 * num_kv_pairs"
        )
    if num_kv_pairs >= vocab_size // 2:
        raise ValueError(f"vocab_size={vocab_size} has {vocab_size // 2 - 1} keys, fewer than num_kv_pairs")
    if power_a <= 0:
        raise ValueError(f"power_a must be > 0, got {power_a}")
    g = torch.Generator().manual_seed(seed)
    n, k = num_examples, num_kv_pairs
    context = 2 * k
    keys = _distinct(n, 1, vocab_size // 2, k, g)
    values = _distinct(n, vocab_size // 2, vocab_size, k, g)
    space = (seq_len - context) // 2  # query slots, one every two positions
    p = power_a * torch.arange(1, space + 1, dtype=torch.float64) ** (power_a - 1)
    gaps = torch.multinomial(p.expand(n, space), k, replacement=False, generator=g)  # (n, k)

    inputs = torch.zeros(n, seq_len, dtype=torch.long)
    inputs[:, 0:context:2] = keys
    inputs[:, 1:context:2] = values
    labels = torch.full((n, seq_len), IGNORE, dtype=torch.long)
    query_pos = context + 2 * gaps
    inputs.scatter_(1, query_pos, keys)
    labels.scatter_(1, query_pos, values)
    if random_non_queries:
        noise = torch.randint(vocab_size, (n, seq_len), generator=g)
        inputs = torch.where(inputs == 0, noise, inputs)
    return inputs, labels


_PASSKEY_INTRO = (
    "There is an important piece of information hidden inside a lot of irrelevant text. "
    "Find it and memorize it. I will quiz you about it.\n"
)
_PASSKEY_FILLER = (
    "The grass is green. ",
    "The sky is blue. ",
    "The sun is yellow. ",
    "Here we go. ",
    "There and back again. ",
)
_PASSKEY_QUESTION = "\nWhat is the pass key? The pass key is "


def _filler(sentences: list[list[int]], length: int) -> tuple[list[int], list[int]]:
    """Cycle the tokenized sentences to exactly `length` tokens; also return the sentence-start offsets."""
    tokens, starts = [], []
    for sentence in itertools.cycle(sentences):
        if len(tokens) >= length:
            break
        starts.append(len(tokens))
        tokens += sentence
    return tokens[:length], starts + [length]


def passkey(
    num_examples: int, seq_len: int, depth: float, tokenizer, seed: int = 0, num_digits: int = 5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Passkey retrieval (Mohtashami & Jaggi, 2023): find a number hidden in filler text.

    Each example is an intro, filler sentences with "The pass key is 40913. Remember it. 40913 is the pass
    key. " inserted at the sentence boundary nearest to relative depth `depth` of the filler (0 = right after
    the intro, 1 = right before the question), then, on a new line, "What is the pass key? The pass key is "
    and the digits. The filler makes the sequence exactly seq_len + 1 tokens (its last sentence may be cut),
    split into inputs (all but the last) and next-token labels (all but the first). Only labels that are
    answer tokens are scored, so labels[labels != -100] is the number's tokens.

    Works with any tokenizer with `encode(str) -> list[int]`; pieces are encoded separately and concatenated.
    With ByteTokenizer, an example's inputs end with "...The pass key is 4091" and its labels with
    "-100 ... -100 4 0 9 1 3" (as bytes).
    """
    for name, value in (("num_examples", num_examples), ("seq_len", seq_len), ("num_digits", num_digits)):
        check_int(name, value)
    if not 0 <= depth <= 1:
        raise ValueError(f"depth must be in [0, 1], got {depth}")
    if not callable(getattr(tokenizer, "encode", None)):
        raise TypeError("tokenizer must have an encode(str) -> list[int] method")
    g = torch.Generator().manual_seed(seed)
    intro, question = tokenizer.encode(_PASSKEY_INTRO), tokenizer.encode(_PASSKEY_QUESTION)
    sentences = [tokenizer.encode(sentence) for sentence in _PASSKEY_FILLER]
    numbers = torch.randint(10 ** (num_digits - 1), 10**num_digits, (num_examples,), generator=g).tolist()
    inputs = torch.zeros(num_examples, seq_len, dtype=torch.long)
    labels = torch.full((num_examples, seq_len), IGNORE, dtype=torch.long)
    for i, number in enumerate(numbers):
        needle = tokenizer.encode(f"The pass key is {number}. Remember it. {number} is the pass key. ")
        answer = tokenizer.encode(str(number))
        num_filler = seq_len + 1 - len(intro) - len(needle) - len(question) - len(answer)
        if num_filler < 0:
            raise ValueError(
                f"seq_len={seq_len} is too short: the passkey prompt alone needs {-num_filler} more tokens"
            )
        filler, boundaries = _filler(sentences, num_filler)
        cut = min(boundaries, key=lambda b: abs(b - depth * num_filler))
        tokens = torch.tensor(intro + filler[:cut] + needle + filler[cut:] + question + answer)
        inputs[i] = tokens[:-1]
        labels[i, -len(answer) :] = tokens[-len(answer) :]
    return inputs, labels


def induction(
    num_examples: int, seq_len: int, vocab_size: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Induction / copying: a segment of h distinct random tokens, then the same segment again.

    With L = seq_len + 1 tokens, h = ceil(L / 2) and the copy is cut to L - h tokens; inputs are the first
    seq_len tokens, labels the next tokens. Once the copy has begun (positions t >= h), the current token
    appeared exactly once before, so its successor there (A B ... A -> B) determines the label; those
    positions are scored, the rest are -100. Example (seq_len=8, segment 5 3 9 1 7):

        inputs  5    3    9    1    7    5    3    9
        labels  -100 -100 -100 -100 -100 3    9    1

    Needs seq_len >= 3 and vocab_size >= h, so the segment's tokens can be distinct.
    """
    for name, value in (("num_examples", num_examples), ("seq_len", seq_len), ("vocab_size", vocab_size)):
        check_int(name, value)
    h = (seq_len + 2) // 2
    if seq_len < 3:
        raise ValueError(f"seq_len must be >= 3 to score any position, got {seq_len}")
    if vocab_size < h:
        raise ValueError(f"vocab_size={vocab_size} < {h} distinct tokens needed for seq_len={seq_len}")
    segment = _distinct(num_examples, 0, vocab_size, h, torch.Generator().manual_seed(seed))
    tokens = torch.cat([segment, segment], dim=1)[:, : seq_len + 1]
    labels = tokens[:, 1:].clone()
    labels[:, :h] = IGNORE
    return tokens[:, :-1], labels

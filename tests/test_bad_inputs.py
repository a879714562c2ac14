"""Malformed input at every public entry point fails early with a clear error naming the argument.

One table: (case id, a call with one thing wrong, the exception, a fragment of its message); a call that
takes an argument is a builder given pytest's tmp_path, returning the call. A new entry
point adds its rows here. Nothing in the table may raise a raw torch/numpy error or pass silently.
"""

import inspect

import pytest
import torch
from test_pretrained import write_tiny_llama

from minihybrid import HybridLM, LayerSpec, ModelConfig
from minihybrid.__main__ import main as cli
from minihybrid.context_cost import decode_timings
from minihybrid.data import IGNORE, ByteTokenizer, byte_streams, iter_eval_batches, sample_batch
from minihybrid.generate import generate
from minihybrid.grading import progress
from minihybrid.kernels.attention import attention
from minihybrid.kernels.scan import ssd_scan
from minihybrid.patterns import configuration_pattern, variant_letter
from minihybrid.plug_in import plug_in
from minihybrid.pretrained import load_gguf_model, load_smollm2, open_gguf
from minihybrid.reproduce import Claim, load
from minihybrid.timing import compare, target_line
from minihybrid.train import TrainConfig, accuracy, load_checkpoint, train

SMALL = {"vocab_size": 40, "d_model": 16, "n_heads": 2, "pattern": "AS", "max_seq_len": 32}


def model() -> HybridLM:
    torch.manual_seed(0)
    return HybridLM(ModelConfig(**SMALL)).eval()


def ids(*shape, high=40, dtype=torch.long):
    return torch.randint(0, high, shape).to(dtype)


def config(**changes):
    return lambda: ModelConfig(**{**SMALL, **changes})


def built(**changes):
    """A model built from SMALL with these changes (mixers check their options when built)."""
    return lambda: HybridLM(ModelConfig(**{**SMALL, **changes}))


def forward(x, **kwargs):
    return lambda: model()(x, **kwargs)


def cached(batch, x):
    """A forward of x into a cache built for `batch` sequences of 8 tokens."""
    def call():
        m = model()
        m(x, cache=m.init_cache(batch, 8))
    return call


def gen(prompt=None, n=4, **kwargs):
    return lambda: generate(model(), ids(1, 3) if prompt is None else prompt, n, **kwargs)


def train_on(train_ids, val_ids=None, **cfg):
    cfg = TrainConfig(**{"steps": 1, "batch_size": 2, "seq_len": 8, "progress": False, **cfg})
    return lambda: train(model(), train_ids, ids(50) if val_ids is None else val_ids, cfg)


def corrupt_checkpoint(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x00" * 20)
    return lambda: load_checkpoint(path, model())


def gguf_file(tmp_path, damage=None):
    """A 2-block llama GGUF file, optionally damaged: 'noise' (random bytes) or 'cut' (its first half)."""
    path = tmp_path / "tiny.gguf"
    write_tiny_llama(path)
    if damage == "noise":
        path.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
    elif damage == "cut":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def loading(damage=None, **kwargs):
    return lambda tmp_path: lambda: load_gguf_model(gguf_file(tmp_path, damage), **kwargs)


def plugging(target, **functions):
    def call():
        with plug_in(target, **functions):
            pass
    return call


def attend(q=(1, 4, 8, 16), k=(1, 2, 8, 16), **kwargs):
    """attention() on random tensors of these shapes (or these tensors), one thing wrong in each row."""
    q, k = (torch.randn(x) if isinstance(x, tuple) else x for x in (q, k))
    return lambda: attention(q, k, k.clone(), **kwargs)


def rollback(pos):
    def call():
        m = model()
        cache = m.init_cache(1, 8)
        m(ids(1, 5), cache=cache)
        cache.rollback(pos)
    return call


def ssm_mixer():
    torch.manual_seed(0)
    return HybridLM(ModelConfig(**{**SMALL, "pattern": "MH"})).eval().blocks[0].mixer


def scan(batch=1, length=5, heads=2, groups=1, state_batch=None, **kwargs):
    """ssd_scan on random inputs (P = 3, N = 4), one thing wrong in each row."""
    x, dt = torch.randn(batch, length, heads, 3), torch.rand(batch, length, heads)
    bc = torch.randn(batch, length, groups, 4)
    state = None if state_batch is None else torch.zeros(state_batch, heads, 3, 4)
    return lambda: ssd_scan(x, dt, -torch.ones(heads), bc, bc, initial_state=state, **kwargs)


def cached_in(pattern, batch, x):
    """One mixer of `pattern` called on x with a cache built for `batch` sequences."""
    def call():
        mixer = HybridLM(ModelConfig(**{**SMALL, "pattern": pattern})).blocks[0].mixer
        mixer(torch.randn(*x.shape, SMALL["d_model"]), cache=mixer.init_cache(batch, 8))
    return call


def ssm_rollback_past_snapshot():
    torch.manual_seed(0)
    m = HybridLM(ModelConfig(**{**SMALL, "pattern": "MA"}))
    cache = m.init_cache(1, 8)
    m(ids(1, 5), cache=cache)
    cache.rollback(2)


def examples(labels=None):
    x = ids(4, 8)
    return x, (torch.full_like(x, IGNORE) if labels is None else labels)


def run_cli(*argv):
    def call():
        with pytest.raises(SystemExit) as exit_info:
            cli(list(argv))
        assert exit_info.value.code == 2
        raise ValueError("cli exited with status 2")  # the message itself is checked through capsys
    return call


CASES = [
    # layer patterns and the hybrid mixers
    ("pattern-placement", config(pattern="1:1@top"), ValueError, "unknown placement 'top'; choose one of"),
    ("pattern-ratio-fill", config(pattern="1:5", n_layers=8, other="M"), ValueError,
     "ratio 1:5 cannot fill n_layers=8"),
    ("intra-head-split", built(pattern="H", n_heads=1), ValueError, "n_heads=1 and n_kv_heads=1 must be"),
    ("ssm-d-state", built(pattern="M", mixer_options={"M": {"d_state": 0}}), ValueError,
     "d_state must be an int >= 1"),
    ("ssm-chunk-size", built(pattern="H", mixer_options={"H": {"chunk_size": 0}}), ValueError,
     "chunk_size must be an int >= 1"),
    ("ssm-state-batch", lambda: ssm_mixer()(torch.randn(2, 3, 16), cache=ssm_mixer().init_cache(3, 8)),
     ValueError, "(SSM): the state was built for batch 3, the input has batch 2"),
    ("ssm-rollback-snapshot", ssm_rollback_past_snapshot, ValueError, "no snapshot at position 2"),
    ("scan-chunk-size", scan(chunk_size=0), ValueError, "chunk_size must be an int >= 1"),
    ("scan-state-batch", scan(batch=2, state_batch=3), ValueError, "initial_state must have shape"),
    ("scan-groups", scan(heads=3, groups=2), ValueError, "H=3 must be a multiple of the B/C groups G=2"),
    ("scan-backend", scan(backend="fast"), ValueError, "unknown backend 'fast'"),
    # module 02's variants of attention and their configurations
    ("variant-name", lambda: variant_letter("Linear"), ValueError, "unknown variant 'Linear'; choose one of"),
    ("configuration-name", lambda: configuration_pattern("sideways", "N", 8), ValueError,
     "unknown configuration 'sideways'; choose one of"),
    ("configuration-outside", lambda: configuration_pattern([0, 9], "N", 8), ValueError,
     "blocks [9] are outside the model's blocks 0..7"),
    ("configuration-skip-all", lambda: configuration_pattern("skip", "N", 1), ValueError,
     "would remove every layer"),
    ("fixed-passage-short", built(pattern="P", mixer_options={"P": {"passage": "brief"}}), ValueError,
     "passage has 5 tokens, shorter than the context (max_seq_len=32)"),
    ("fixed-passage-vocab", built(pattern="P", mixer_options={"P": {"passage": [45] * 40}}), ValueError,
     "passage must be token ids in 0..39"),
    ("taylor-feature-dim", built(pattern="T", mixer_options={"T": {"feature_dim": 0}}), ValueError,
     "feature_dim must be an int >= 1"),
    ("non-approx-qk-norm", built(pattern="N", mixer_options={"N": {"qk_norm": "yes"}}), TypeError,
     "qk_norm must be True or False"),
    ("non-approx-state-batch", cached_in("N", batch=3, x=ids(2, 4)), ValueError,
     "(non-approximate): the state was built for batch 3, the input has batch 2"),
    ("decode-cost-context", lambda: decode_timings({"m": model()}, 40), ValueError,
     "context + n_new = 72 exceeds its max_seq_len=32"),
    # training on examples
    ("examples-no-label", train_on(examples(), examples(ids(4, 8))), ValueError, "has no scored label"),
    ("examples-shape", lambda: accuracy(model(), examples(ids(4, 9))), ValueError,
     "labels must be a torch.long tensor of the inputs' shape (4, 8)"),
    ("examples-type", lambda: accuracy(model(), [ids(4, 8), ids(4, 8)]), TypeError,
     "must be an (inputs, labels) tuple"),
    # config
    ("config-zero-width", config(d_model=0), ValueError, "ModelConfig.d_model must be an int >= 1"),
    ("config-negative-vocab", config(vocab_size=-5), ValueError, "ModelConfig.vocab_size must be an int"),
    ("config-float-length", config(max_seq_len=1.5), ValueError, "ModelConfig.max_seq_len must be an int"),
    ("config-bool-heads", config(n_heads=True), ValueError, "ModelConfig.n_heads must be an int"),
    ("config-gqa", config(n_heads=4, n_kv_heads=3, d_model=32), ValueError, "multiple of n_kv_heads=3"),
    ("config-odd-head-dim", config(head_dim=7), ValueError, "head_dim=7 must be even"),
    ("config-zero-eps", config(norm_eps=0), ValueError, "ModelConfig.norm_eps must be a number > 0"),
    ("config-embed-std", config(embed_init_std=-0.3), ValueError, "ModelConfig.embed_init_std must be a"),
    ("config-letter", config(pattern="AXA"), ValueError, "unknown mixer letter 'X'"),
    ("config-ratio-fit", config(pattern="1:5", n_layers=8), ValueError, "multiple of 6"),
    ("config-empty-pattern", config(pattern=""), ValueError, "at least one layer"),
    ("config-option-name", config(pattern=[LayerSpec("S", {"windw": 3})]), ValueError, "no option 'windw'"),
    ("config-options-letter", config(mixer_options={"Q": {}}), ValueError, "unknown mixer 'Q'"),
    ("config-options-type", config(mixer_options=["S"]), TypeError, "mixer_options must map"),
    ("config-preset", lambda: ModelConfig.from_name("huge"), ValueError, "unknown preset 'huge'"),
    ("config-window-zero", built(mixer_options={"S": {"window": 0}}), ValueError,
     "window must be an int >= 1 or None, got 0"),
    ("config-window-text", built(mixer_options={"S": {"window": "32"}}), ValueError,
     "window must be an int >= 1 or None, got '32'"),
    # model forward
    ("forward-float-ids", forward(ids(1, 4, dtype=torch.float32)), ValueError, "dtype torch.float32"),
    ("forward-int32-ids", forward(ids(1, 4, dtype=torch.int32)), ValueError, "torch.long tensor"),
    ("forward-id-too-large", forward(torch.tensor([[1, 40]])), ValueError, "token id 40 is outside"),
    ("forward-negative-id", forward(torch.tensor([[-1, 2]])), ValueError, "token id -1 is outside"),
    ("forward-1d", forward(ids(4)), ValueError, "idx must be a non-empty 2-D (batch, seq_len)"),
    ("forward-empty", forward(ids(1, 0)), ValueError, "idx must be a non-empty 2-D (batch, seq_len)"),
    ("forward-not-a-tensor", forward([[1, 2]]), TypeError, "got list"),
    ("forward-too-long", forward(ids(1, 33)), ValueError, "exceed max_seq_len=32"),
    ("forward-skip-index", forward(ids(1, 4), skip_layers=[5]), ValueError, "block indices in 0..1"),
    # caches
    ("cache-batch-zero", lambda: model().init_cache(0, 8), ValueError, "init_cache: batch must be an int"),
    ("cache-too-long", lambda: model().init_cache(1, 64), ValueError, "exceeds max_seq_len=32"),
    ("cache-other-batch", cached(2, ids(1, 4)), ValueError, "built for batch 2"),
    ("cache-overflow", cached(1, ids(1, 9)), ValueError, "overflows"),
    ("cache-rollback-negative", rollback(-1), ValueError, "must be in 0..5"),
    ("cache-rollback-future", rollback(6), ValueError, "must be in 0..5"),
    # generate
    ("generate-zero-tokens", gen(n=0), ValueError, "max_new_tokens must be an int >= 1"),
    ("generate-negative-tokens", gen(n=-3), ValueError, "max_new_tokens must be an int >= 1"),
    ("generate-temperature", gen(temperature=-1.0), ValueError, "temperature must be a number >= 0"),
    ("generate-top-k", gen(top_k=0), ValueError, "top_k must be an int >= 1 or None"),
    ("generate-float-prompt", gen(prompt=ids(1, 3, dtype=torch.float32)), ValueError, "dtype torch.float32"),
    ("generate-1d-prompt", gen(prompt=ids(3)), ValueError, "prompt must be a non-empty 2-D (batch, seq_len)"),
    ("generate-eos", gen(eos_id=10**6), ValueError, "eos_id must be a token id in 0..39"),
    ("generate-too-long", gen(n=40), ValueError, "exceeds max_seq_len=32"),
    # training
    ("train-zero-steps", lambda: TrainConfig(steps=0), ValueError, "TrainConfig.steps must be an int >= 1"),
    ("train-negative-lr", lambda: TrainConfig(lr=-1e-3), ValueError, "TrainConfig.lr must be a number > 0"),
    ("train-batch", lambda: TrainConfig(batch_size=0), ValueError, "TrainConfig.batch_size must be an int"),
    ("train-betas", lambda: TrainConfig(betas=(0.9, 1.5)), ValueError, "TrainConfig.betas"),
    ("train-float-stream", train_on(ids(50, dtype=torch.float32)), ValueError, "train_ids must be a"),
    ("train-2d-stream", train_on(ids(2, 50)), ValueError, "train_ids must be a non-empty 1-D"),
    ("train-vocab", train_on(ids(50, high=99)), ValueError, "train_ids: token id"),
    ("train-short-val", train_on(ids(50), ids(5)), ValueError, "val_ids has 5 tokens"),
    ("checkpoint-corrupt", corrupt_checkpoint, ValueError, "not a readable safetensors file"),
    # kernels
    ("kernel-not-a-tensor", attend(q=[[1.0]]), TypeError, "q must be a torch.Tensor, got list"),
    ("kernel-rank", attend(q=(4, 8, 16)), ValueError, "q must have rank 4"),
    ("kernel-gqa", attend(q=(1, 3, 8, 16)), ValueError, "multiple of kv heads"),
    ("kernel-more-queries", attend(q=(1, 4, 9, 16)), ValueError, "more queries than keys"),
    ("kernel-dtype-mix", attend(k=torch.randn(1, 2, 8, 16).double()), ValueError, "dtype mismatch"),
    ("kernel-window", attend(window=0), ValueError, "window must be >= 1"),
    ("kernel-backend", attend(backend="sdpa"), ValueError, "unknown backend 'sdpa'"),
    ("kernel-half-numba", attend(q=torch.randn(1, 4, 8, 16).half(), k=torch.randn(1, 2, 8, 16).half(),
                                 backend="numba"), ValueError, "not supported by backend 'numba'"),
    # loaders and data
    ("gguf-missing", lambda: load_smollm2("/nonexistent/model.gguf"), FileNotFoundError, "no GGUF file at"),
    ("gguf-path-type", lambda: open_gguf(42), TypeError, "path must be a str or pathlib.Path"),
    ("gguf-noise", loading("noise"), ValueError, "could not be read as a GGUF file"),
    ("gguf-truncated", loading("cut"), ValueError, ("is truncated", "could not be read as a GGUF file")),
    ("gguf-pattern-length", loading(pattern="SSS"), ValueError, "has 3 blocks but"),
    ("gguf-dtype", loading(dtype=torch.int64), ValueError, "dtype must be a floating-point dtype"),
    ("gguf-max-seq-len", loading(max_seq_len=0), ValueError, "ModelConfig.max_seq_len must be an int >= 1"),
    ("batch-float-stream", lambda: sample_batch(torch.arange(100.0), 2, 8), ValueError, "1-D torch.long"),
    ("batch-2d-stream", lambda: iter_eval_batches(torch.arange(100).view(10, 10), 2, 8), ValueError,
     "shape (10, 10)"),
    ("batch-size-zero", lambda: sample_batch(torch.arange(100), 0, 8), ValueError, "batch_size must be"),
    ("batch-short-stream", lambda: sample_batch(torch.arange(8), 2, 8), ValueError, "needs 9"),
    ("streams-corpus", lambda: byte_streams("Python"), ValueError, "corpus must be one of 'shakespeare'"),
    ("bytes-decode", lambda: ByteTokenizer().decode([300]), ValueError, "ids must be byte values"),
    ("bytes-encode", lambda: ByteTokenizer().encode(b"x"), TypeError, "text must be a str, got bytes"),
    # grading and plugging answers in
    ("progress-unknown", lambda: progress("ex99"), ValueError, "unknown exercise 'ex99'"),
    ("progress-folder", lambda: progress("ex00", "/nope"), FileNotFoundError, "no exercise folder at /nope"),
    ("plug-in-model-type", plugging("model", rms_norm=abs), TypeError, "model must be a torch.nn.Module"),
    ("plug-in-nothing", plugging(model()), ValueError, "nothing to plug in"),
    ("plug-in-no-norm", plugging(torch.nn.Linear(4, 4), rms_norm=abs), ValueError, "has no RMSNorm"),
    # reproductions, timing, command line
    ("reproduce-unknown", lambda: load("nosuch"), ValueError, "unknown reproduction 'nosuch'"),
    ("claim-verdict", lambda: Claim("a", "b", "maybe", "c"), ValueError, "verdict must be one of"),
    ("timing-repeats", lambda: compare({"a": int}, repeats=0), ValueError, "repeats must be >= 1"),
    ("timing-op", lambda: target_line("x", 1.0, "==", 1.0), ValueError, "op must be one of"),
    ("cli-unknown-reproduction", run_cli("reproduce", "--only", "nosuch"), ValueError, "status 2"),
    ("cli-unknown-preset", run_cli("train", "--preset", "huge", "--steps", "1"), ValueError, "status 2"),
]
CLI_MESSAGES = {"cli-unknown-reproduction": "error: unknown reproduction 'nosuch'",
                "cli-unknown-preset": "error: unknown preset 'huge'"}


def test_the_table_is_large_enough():
    assert len(CASES) >= 40 and len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case,call,error,match", CASES, ids=[case[0] for case in CASES])
def test_bad_input_is_refused_clearly(case, call, error, match, tmp_path, capsys):
    if inspect.signature(call).parameters:  # a builder that needs a temporary folder
        call = call(tmp_path)
    with pytest.raises(error) as info:
        call()
    alternatives = match if isinstance(match, tuple) else (match,)
    assert any(m in str(info.value) for m in alternatives), f"{case}: {info.value}"
    if case in CLI_MESSAGES:
        assert CLI_MESSAGES[case] in capsys.readouterr().err

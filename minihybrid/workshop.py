"""`make workshop` (`python -m minihybrid workshop`): every cached artifact a room needs, built in advance.

A room of learners should wait neither for a download (there may be no network) nor for a training run.
`build` fetches the two downloads (SmolLM2's GGUF file, Shakespeare; data/fetch.py), then trains, or finds in
the cache, every model the notebooks reuse, by calling the very functions the notebooks call, so the cache
keys (trained.py) are theirs. Both modes are built, fast first:

    fast   MINIHYBRID_FAST=1 (`MINIHYBRID_FAST=1 make lab`, the workshop setting)   about 1 min on 2 cores
    full   the notebooks' default sizes, which the reproductions also use          about 1.5 h on 2 cores

Training resumes from its last checkpoint, so an interrupted build loses little. The checkpoint files each
notebook uses are recorded per mode in `<cache>/workshop.json`, beside a fingerprint of the library's source;
`doctor` reads that record and the files' headers to say whether the room is ready (the cache keys hash the
training data and, for a finetune, the starting weights, which doctor cannot recompute in seconds).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import minihybrid
from minihybrid import trained
from minihybrid.data import cache_dir, shakespeare_dir, smollm2_gguf_path

MODES = ("fast", "full")
MANIFEST = "workshop.json"  # in cache_dir()


def _baseline() -> None:
    from minihybrid.data import byte_streams, load_shakespeare
    from minihybrid.reproduce import baseline

    setup = baseline.settings()
    streams = byte_streams("shakespeare", load_shakespeare())
    trained.trained_model(setup.model, setup.train, streams, baseline.DATA)


def _hybrid() -> None:
    from minihybrid.reproduce import hybrid

    setup = hybrid.settings()
    hybrid.train_language_models(setup)
    hybrid.train_recall_models(setup, hybrid.recall_data(setup))


def _deconstruct() -> None:
    from minihybrid.reproduce import deconstruct

    setup = deconstruct.settings()
    configurations = deconstruct.main_configurations(setup.n_layers)
    deconstruct.train_models(setup, deconstruct.task_data(setup), configurations)


def _sparse() -> None:
    from minihybrid.reproduce import sparse
    from minihybrid.reproduce.sparse_tiny import short_to_long

    short_to_long(sparse.settings().tiny)  # the pretrained model and its two finetunes (it also scores them)


# Every registered reproduction (reproduce.REPRODUCTIONS): what its notebook trains, as the notebook calls it
# (None: nothing is trained). A new module adds its line here, or tests/test_doctor.py fails.
NOTEBOOK_MODELS: dict[str, Callable[[], None] | None] = {
    "baseline": _baseline,  # notebook 00: the tiny Shakespeare model
    "hybrid": _hybrid,  # 01: the language models (every variant and seed) and the recall models
    "deconstruct": _deconstruct,  # 02: the main configurations, every seed (the ablations are the report's)
    "sparse": _sparse,  # 03: the short-to-long tiny model
    "layerskip": None,  # 04: SmolLM2 only
    "compress": None,  # 05: SmolLM2 only
}


def library_fingerprint() -> str:
    """16 hex digits of a hash over the library's source files: a change may change every cache key."""
    root = Path(minihybrid.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def manifest_path() -> Path:
    return cache_dir() / MANIFEST


def read_manifest() -> dict:
    """{"library": fingerprint, "modes": {mode: {reproduction: [checkpoint file names]}}}; empty when none was
    written or it cannot be read."""
    try:
        manifest = json.loads(manifest_path().read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("modes"), dict) else {}


def _record(fingerprint: str, mode: str, name: str, paths: list[Path]) -> None:
    """Add one reproduction's checkpoints, built by the library `fingerprint`, to the manifest (dropping the
    record of another library)."""
    manifest = read_manifest()
    if manifest.get("library") != fingerprint:
        manifest = {"library": fingerprint, "modes": {}}
    manifest["modes"].setdefault(mode, {})[name] = sorted({p.name for p in paths})
    target = manifest_path()
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, target)


@contextmanager
def _mode(mode: str) -> Iterator[None]:
    """MINIHYBRID_FAST set for `mode` inside the block (every `settings()` reads it), restored after."""
    before = os.environ.get("MINIHYBRID_FAST")
    os.environ["MINIHYBRID_FAST"] = "1" if mode == "fast" else "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MINIHYBRID_FAST", None)
        else:
            os.environ["MINIHYBRID_FAST"] = before


@contextmanager
def _recorded_checkpoints() -> Iterator[list[Path]]:
    """The checkpoint paths `trained_model` resolves inside the block, trained there or found in the cache."""
    used: list[Path] = []
    resolve = trained.checkpoint_path

    def record(*args, **kwargs) -> Path:
        used.append(resolve(*args, **kwargs))
        return used[-1]

    trained.checkpoint_path = record
    try:
        yield used
    finally:
        trained.checkpoint_path = resolve


def build_checkpoints(modes=MODES) -> None:
    """Train (or find cached) every model the notebooks reuse, in each mode, and record their files."""
    unknown = set(modes) - set(MODES)
    if unknown:
        raise ValueError(f"modes must be among {MODES}, got {sorted(unknown)}")
    fingerprint = library_fingerprint()  # of the code that runs (already imported: later edits do not count)
    for mode in MODES:  # fast first: a room running fast mode is ready while full mode still trains
        if mode not in modes:
            continue
        for name, build in NOTEBOOK_MODELS.items():
            if build is None:
                continue
            print(f"workshop: {mode} mode, {name}", flush=True)
            start = time.perf_counter()
            with _mode(mode), _recorded_checkpoints() as used:
                build()
            _record(fingerprint, mode, name, used)
            print(f"workshop: {mode} mode, {name}: {len(set(used))} checkpoints "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)


def build(modes=MODES) -> None:
    """The downloads, then the checkpoints of `modes` (none: the downloads only)."""
    print(f"workshop: SmolLM2 GGUF at {smollm2_gguf_path()}", flush=True)
    print(f"workshop: Shakespeare at {shakespeare_dir()}", flush=True)
    build_checkpoints(modes)

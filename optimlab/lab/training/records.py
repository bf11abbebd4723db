"""One JSON record per run, at a deterministic key, written atomically, checked on read.

The key is a hash of everything that determines the run (problem, optimizer,
hyperparameters, seed, budget, data preparation), so the same run always lands
on the same file: an interrupted experiment resumes by skipping keys that
exist. Records are written to a temporary file, flushed to disk and renamed
with ``os.replace``, so a run killed at any moment (even by ``kill -9``) leaves
either no record or a complete one, never a truncated one.

Every record carries ``checksum``, the SHA-256 of its canonical JSON: a record
that was truncated, emptied or edited by hand fails :func:`read` with a
:class:`RecordError` naming the file and what to do (delete it, and the run is
computed again). The checksum catches corruption and accidental edits; it is
not a signature against someone who recomputes it.

Files get the usual permissions (``0666`` less the umask), so a team sharing a
folder can read them. Temporary files of killed writers are removed by
:func:`clean_stale`.

Concurrent processes split the work through claims: :func:`claim` creates
``<key>.claim`` next to the record atomically (``O_CREAT | O_EXCL``); whoever
creates it computes the run, the others wait for its record. A claim whose
process is dead (same machine) or that is older than :data:`CLAIM_TIMEOUT`
(another machine) is stale and taken over.

Layout: ``OUT/records/<problem>/<optimizer>/<fingerprint>-<key>.json``, where
``<fingerprint>`` is the first 8 digits of the problem's fingerprint (see
:func:`optimlab.lab.training.problems.fingerprint`; schema 2 records, from
before it, are named ``<key>.json`` and stay readable). Folder names are the
names made safe on every system (:func:`folder_name`: ``keras.optimizers:Adam``
becomes ``keras.optimizers_Adam-<hash>``); the record holds the real names.
"""

import hashlib
import json
import math
import os
import re
import socket
import time
from pathlib import Path

SCHEMA = 3  # 3: the spec holds the problem's fingerprint; file names begin with it; folder names are safe names
READABLE = (2, 3)  # schemas this version reads (2: before problem fingerprints)
CLAIM_TIMEOUT = 6 * 3600.0  # seconds after which another machine's claim counts as abandoned
TMP_TIMEOUT = 3600.0  # seconds after which a temporary file of another machine counts as abandoned
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


class RecordError(ValueError):
    """A record file that cannot be used (truncated, empty, edited or of another schema)."""


def run_key(spec):
    """A 16-hex-digit key from the canonical JSON of ``spec`` (order of keys irrelevant)."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]")  # Windows forbids <>:"/\\|?* and control characters in names
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}


def folder_name(name):
    """``name`` as a folder name valid on Windows, macOS and Linux, distinct for distinct names.

    A name that is safe as it is stays as it is (``adam``, ``iris``); any other
    gets its unsafe characters replaced by ``_`` and 8 digits of its hash added
    (``keras.optimizers:Adam`` -> ``keras.optimizers_Adam-<hash>``), so two names never share a folder.
    """
    slug = _UNSAFE.sub("_", str(name)).rstrip(". ") or "_"
    if slug.split(".")[0].upper() in _RESERVED:
        slug = f"_{slug}"
    if slug != name:
        slug = f"{slug}-{hashlib.sha256(str(name).encode()).hexdigest()[:8]}"
    return slug


def record_path(out, spec):
    """Where the record of ``spec`` lives: ``OUT/records/<problem>/<optimizer>/<fingerprint>-<key>.json``."""
    prefix = f"{spec['fingerprint'][:8]}-" if spec.get("fingerprint") else ""
    return (Path(out) / "records" / folder_name(spec["problem"]) / folder_name(spec["optimizer"])
            / f"{prefix}{run_key(spec)}.json")


def other_definitions(out, problem, fingerprint):
    """How many records under ``out`` of the problem named ``problem`` were made by another definition of it.

    Reads only file names (the fingerprint begins each one; schema 2 records have none and count as other).
    """
    folder = Path(out) / "records" / folder_name(problem)
    own = f"{fingerprint[:8]}-"
    return sum(1 for path in folder.glob("*/*.json") if not path.name.startswith(own))


def _clean(value):
    """JSON has no NaN or infinity: they become None (``null``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def checksum(record):
    """SHA-256 of the canonical JSON of ``record`` without its ``checksum`` field."""
    body = {k: v for k, v in record.items() if k != "checksum"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _file_mode():
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write(path, record):
    """Write ``record`` (with its checksum) to ``path`` atomically (temporary file, fsync, ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = _clean(record)
    # one line: Python's C encoder (indent= falls back to a pure-Python one, ten times slower)
    text = json.dumps({**record, "checksum": checksum(record)}, sort_keys=True, allow_nan=False)
    tmp = path.parent / f".{path.stem}.{os.getpid()}-{_HOST}.{os.urandom(4).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _parse(path):
    """The record in the file at ``path``, checked; RecordError naming the file otherwise."""
    fix = "delete it to compute that run again, or restore it from a copy"
    text = path.read_text()
    if not text.strip():
        raise RecordError(f"run record {path} is empty (a disk full or a copy cut short?); {fix}")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise RecordError(f"run record {path} is not valid JSON ({error}); it is truncated or damaged: {fix}") from None
    if not isinstance(record, dict) or "checksum" not in record:
        raise RecordError(f"run record {path} has no checksum (not written by this optimlab version, "
                          f"or edited); {fix}")
    if record["checksum"] != checksum(record):
        raise RecordError(f"run record {path} does not match its checksum: it was edited or corrupted; {fix}")
    if record.get("schema") is not None and record["schema"] not in READABLE:
        raise RecordError(f"run record {path} has schema {record['schema']}, this optimlab reads "
                          f"{' and '.join(map(str, READABLE))}; {fix}")
    del record["checksum"]
    return record


def read(path):
    """The record at ``path``, or None if there is none; RecordError if it is damaged."""
    path = Path(path)
    if not path.exists():
        return None
    return _parse(path)


def load_all(out):
    """Every record under ``out`` (temporary files and claims are ignored); RecordError on a damaged one."""
    return [_parse(p) for p in sorted(Path(out).glob("records/*/*/*.json"))]


def _owner_gone(name, mtime, timeout):
    """True when the process named in ``<pid>-<host>`` is dead here, or the file is old (other machine)."""
    try:
        pid, host = name.split("-", 1)  # host names may hold dashes
        pid = int(pid)
    except ValueError:
        return time.time() - mtime > timeout
    if host == _HOST:
        return not _pid_alive(pid)
    return time.time() - mtime > timeout


def clean_stale(out):
    """Remove temporary files of killed writers under ``out``; returns how many were removed."""
    removed = 0
    for tmp in Path(out).glob("records/*/*/.*.tmp"):
        parts = tmp.name.split(".")
        try:
            gone = _owner_gone(parts[2] if len(parts) > 4 else "", tmp.stat().st_mtime, TMP_TIMEOUT)
        except FileNotFoundError:
            continue
        if gone:
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def claim_path(path):
    return Path(path).with_suffix(".claim")


def claim(path):
    """Claim the run whose record is ``path``; True if this process now owns it.

    False when a live process holds the claim. A stale claim (its process
    dead, or older than :data:`CLAIM_TIMEOUT` from another machine) is taken over.
    """
    target = claim_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _file_mode())
        except FileExistsError:
            try:
                owner, mtime = target.read_text().strip(), target.stat().st_mtime
            except FileNotFoundError:
                continue  # released meanwhile: try again
            if not _owner_gone(owner, mtime, CLAIM_TIMEOUT):
                return False
            stale = target.with_name(f"{target.name}.{os.getpid()}.stale")
            try:
                os.rename(target, stale)  # atomic: one of several processes taking over wins
            except FileNotFoundError:
                continue
            stale.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}-{_HOST}")
        return True
    return False


def release(path):
    """Drop this process's claim on the run whose record is ``path``."""
    claim_path(path).unlink(missing_ok=True)


def claimed_by_other(path):
    """True while a live process other than this one holds the claim of ``path``."""
    target = claim_path(path)
    try:
        owner, mtime = target.read_text().strip(), target.stat().st_mtime
    except FileNotFoundError:
        return False
    return owner != f"{os.getpid()}-{_HOST}" and not _owner_gone(owner, mtime, CLAIM_TIMEOUT)

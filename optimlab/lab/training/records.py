"""One JSON record per run, at a deterministic key, written atomically.

The key is a hash of everything that determines the run (problem, optimizer,
hyperparameters, seed, budget, data preparation), so the same run always lands
on the same file: an interrupted experiment resumes by skipping keys that
exist. Records are written to a temporary file, flushed to disk and renamed
with ``os.replace``, so a run killed at any moment (even by ``kill -9``) leaves
either no record or a complete one, never a truncated one.

Layout: ``OUT/records/<problem>/<optimizer>/<key>.json``.
"""

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

SCHEMA = 1


def run_key(spec):
    """A 16-hex-digit key from the canonical JSON of ``spec`` (order of keys irrelevant)."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def record_path(out, spec):
    return Path(out) / "records" / spec["problem"] / spec["optimizer"] / f"{run_key(spec)}.json"


def _clean(value):
    """JSON has no NaN or infinity: they become None (``null``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write(path, record):
    """Write ``record`` to ``path`` atomically (temporary file, fsync, ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_clean(record), indent=1, sort_keys=True, allow_nan=False)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path):
    """The record at ``path``, or None if there is none."""
    path = Path(path)
    if not path.exists():
        return None
    return json.loads(path.read_text())


def load_all(out):
    """Every record under ``out`` (temporary files of killed writers are ignored)."""
    return [json.loads(p.read_text()) for p in sorted(Path(out).glob("records/*/*/*.json"))]

"""optimlab's own CPU kernels, compiled on first use with g++.

``load()`` returns the loaded op library (``optimlab_ops.cc`` in this folder,
with the ``OptimlabApply*`` and ``OptimlabMultiApply*`` ops that ``optimlab.fused``
calls), or None, with one warning, when it cannot be built:
no g++, no TensorFlow headers, a failed compilation or load. Set the
environment variable ``OPTIMLAB_NATIVE=0`` to switch the kernels off; callers
then use TensorFlow's kernels.

The library is compiled for the machine that runs it (``-march=native``) into
``$OPTIMLAB_CACHE`` (default ``~/.cache/optimlab``), under a name derived from
the source, the TensorFlow version, the compiler, its flags and the CPU, so a
change to any of them builds a new one. Two processes building at once each
write a private temporary file and rename it into place.

Example:
    >>> from optimlab import kernels
    >>> ops = kernels.load()  # None where g++ is missing
"""

import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import tensorflow as tf

SOURCE = Path(__file__).with_name("optimlab_ops.cc")
FLAGS = ("-std=c++17", "-shared", "-fPIC", "-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-w")


def enabled():
    """False when the environment variable ``OPTIMLAB_NATIVE`` is ``0`` (or false/off/no)."""
    return os.environ.get("OPTIMLAB_NATIVE", "1").strip().lower() not in ("0", "false", "off", "no")


def cache_dir():
    """``$OPTIMLAB_CACHE`` or ``~/.cache/optimlab``."""
    return Path(os.environ.get("OPTIMLAB_CACHE") or Path.home() / ".cache" / "optimlab")


def _cpu_flags():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor()


def build_command(compiler, output):
    """The g++ command line compiling ``SOURCE`` into ``output``."""
    compile_flags = tf.sysconfig.get_compile_flags()
    link_flags = tf.sysconfig.get_link_flags()
    return [compiler, *FLAGS, *compile_flags, str(SOURCE), "-o", str(output), *link_flags]


def library_path(compiler):
    """Where the library built by ``compiler`` for this source, TensorFlow and CPU is cached."""
    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), tf.__version__, compiler, " ".join(build_command(compiler, "")), platform.machine(), _cpu_flags()):
        key.update(part if isinstance(part, bytes) else part.encode())
    return cache_dir() / f"optimlab_ops-{key.hexdigest()[:16]}.so"


def build(compiler="g++"):
    """Compile the library unless cached; returns its path. Raises RuntimeError on failure."""
    found = shutil.which(compiler)
    if found is None:
        raise RuntimeError(f"compiler {compiler!r} not found on PATH")
    target = library_path(found)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=target.stem + ".", suffix=".tmp.so", dir=target.parent)
    os.close(fd)
    try:
        result = subprocess.run(build_command(found, temporary), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{compiler} failed ({result.returncode}):\n{result.stderr[-2000:]}")
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return target


@functools.cache
def _load(compiler):
    try:
        return tf.load_op_library(str(build(compiler)))
    except (RuntimeError, OSError, tf.errors.OpError) as error:  # fall back to TensorFlow's kernels
        warnings.warn(f"optimlab: native kernels unavailable, using TensorFlow's ({error})", RuntimeWarning, stacklevel=3)
        return None


def load(compiler="g++"):
    """The op library, built on first use; None (one warning) when it cannot be built or is switched off."""
    if not enabled():
        return None
    return _load(compiler)

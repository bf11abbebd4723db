"""Keep library log lines out of the command's output unless ``--verbose``.

TensorFlow's C++ runtime prints absl/oneDNN/CUDA lines to the process's standard
error while it loads, before any Python logging setting can apply, and it
prints them again when Keras loads its own copy of the runtime.
:func:`import_libraries` loads both with file descriptor 2 pointed at
``/dev/null`` and then lowers the Python-side loggers (TensorFlow's retracing
warnings, absl, Optuna's per-trial messages) to errors. Example::

    from optimlab import _quiet
    _quiet.import_libraries(verbose=False)   # then import optimlab.lab...
"""

import contextlib
import logging
import os
import sys
import warnings

_QUIET = []  # [True] once import_libraries silenced the libraries
_SAVED_STDERR = []  # the real standard error's descriptor while silenced_stderr() points 2 at /dev/null


def stderr_fd():
    """The descriptor of the real standard error, also while :func:`silenced_stderr` hides descriptor 2."""
    return _SAVED_STDERR[-1] if _SAVED_STDERR else 2


def quiet():
    """Whether this process silenced the libraries (worker processes then do the same)."""
    return bool(_QUIET)


@contextlib.contextmanager
def silenced_stderr():
    """Point file descriptor 2 at /dev/null for the block (C++ writes included)."""
    sys.stderr.flush()
    saved = os.dup(2)
    _SAVED_STDERR.append(saved)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        _SAVED_STDERR.remove(saved)
        os.close(saved)


def import_libraries(verbose=False):
    """Import TensorFlow and Keras; unless ``verbose``, silently and with quiet loggers."""
    if verbose:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401

        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    _QUIET[:] = [True]
    with silenced_stderr():
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices()  # device start-up lines (CUDA probes) happen here
        tf.constant(0.0).numpy()

    tf.get_logger().setLevel(logging.ERROR)
    tf.autograph.set_verbosity(0)
    logging.getLogger("absl").setLevel(logging.ERROR)
    for module in ("keras", "tensorflow", "optuna", "absl"):  # library warnings only, not the user's
        warnings.filterwarnings("ignore", module=module)
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
    except ImportError:  # optuna is a dependency; tolerate a partial install here
        pass

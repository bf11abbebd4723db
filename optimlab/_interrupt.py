"""Ctrl-C that stops a long command cleanly between two safe points.

Python's default SIGINT handler raises ``KeyboardInterrupt`` wherever the main
thread happens to be, including inside finalizers and library callbacks,
where it is printed as "Exception ignored" and lost. Inside :func:`graceful`,
the first Ctrl-C only sets a flag; the lab calls :func:`check` between runs,
which raises :class:`Interrupted` there, and a run in progress watches
:func:`requested` while its compiled program runs (see
``optimlab.lab.training.runner.loop``), so it ends within a training step.
A second Ctrl-C raises ``KeyboardInterrupt`` at once.

Example::

    with graceful():
        for run in runs:
            check()          # raises Interrupted after a Ctrl-C
            train(run)
"""

import contextlib
import signal
import threading

_requested = threading.Event()
_watching = threading.Event()  # set inside graceful(): Ctrl-C is ours to handle


class Interrupted(KeyboardInterrupt):
    """The user pressed Ctrl-C; raised at a safe point (no record half-written)."""


def requested():
    return _requested.is_set()


def watching():
    """Whether a :func:`graceful` block is active (so a Ctrl-C will be a request, not an exception)."""
    return _watching.is_set()


def check(*_):
    """Raise :class:`Interrupted` if a Ctrl-C arrived (ignores its arguments: usable as a callback)."""
    if _requested.is_set():
        raise Interrupted()


@contextlib.contextmanager
def graceful():
    """First SIGINT: request a stop at the next :func:`check`; second: ``KeyboardInterrupt`` now."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if _requested.is_set():
            raise KeyboardInterrupt
        _requested.set()

    previous = signal.signal(signal.SIGINT, handler)
    _requested.clear()
    _watching.set()
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested.clear()
        _watching.clear()

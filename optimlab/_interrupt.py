"""Ctrl-C that stops a long command cleanly between two safe points.

Python's default SIGINT handler raises ``KeyboardInterrupt`` wherever the main
thread happens to be, including inside finalizers and library callbacks,
where it is printed as "Exception ignored" and lost. Inside :func:`graceful`,
the first Ctrl-C only sets a flag; the training loop calls :func:`check` after
every chunk of epochs (a fraction of a second) and between runs, which raises
:class:`Interrupted` there. A second Ctrl-C raises ``KeyboardInterrupt`` at once.

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


class Interrupted(KeyboardInterrupt):
    """The user pressed Ctrl-C; raised at a safe point (no record half-written)."""


def requested():
    return _requested.is_set()


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
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested.clear()

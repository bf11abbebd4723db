"""Ctrl-C that stops a long command cleanly between two safe points.

Python's default SIGINT handler raises ``KeyboardInterrupt`` wherever the main
thread happens to be, including inside finalizers and library callbacks,
where it is printed as "Exception ignored" and lost. Inside :func:`graceful`,
the first Ctrl-C only sets a flag; the lab calls :func:`check` between runs,
which raises :class:`Interrupted` there, and a run in progress watches
:func:`requested` while its compiled program runs (see
``optimlab.lab.training.runner.loop``), so it ends within a training step.
A second Ctrl-C raises ``KeyboardInterrupt`` at once. :func:`message` is
what the command prints then (how many runs were saved, how to resume).

Before that, from the command's first moment (:func:`start_up`, called by
:mod:`optimlab.cli` before Typer loads), every press is remembered
(:func:`untold`): while the command's modules load it exits at once with
status 130; later it raises ``KeyboardInterrupt``, and a press that a
library swallowed on the way (TensorFlow's import runs optional imports
under bare ``except``) still stops the command once the import returns,
instead of letting it run to its end and exit 0.

Example::

    with graceful():
        for run in runs:
            check()          # raises Interrupted after a Ctrl-C
            train(run)
"""

import concurrent.futures
import contextlib
import os
import signal
import threading
import time

from optimlab import _quiet

_requested = threading.Event()
_watching = threading.Event()  # set inside graceful(): Ctrl-C is ours to handle
_pressed = threading.Event()  # a Ctrl-C reached the start-up handler (kept to the end; graceful() has its own)
_delivered = threading.Event()  # check() raised Interrupted for the current request
_reported = threading.Event()  # the command told the user it stopped (message() via stopped())
_exit_now = []  # [True] while the command's own modules load: a Ctrl-C exits at once (nothing to clean up)


_saving = []  # [runner] whose saved runs the Ctrl-C message counts: set by the commands that save runs


class Interrupted(KeyboardInterrupt):
    """The user pressed Ctrl-C; raised at a safe point (no record half-written)."""


def count_saved_runs(runner):
    """Let :func:`message` count ``runner.computed`` (runs saved by this command); None: nothing to resume."""
    _saving[:] = [] if runner is None else [runner]


def message():
    """What a Ctrl-C tells: runs saved and how to resume for commands that save runs, else just the stop."""
    if not _saving:  # converge, bench, report, listings: nothing to resume
        return "interrupted"
    return f"interrupted: {_saving[0].computed} runs saved; rerun the same command to resume"


def requested():
    return _requested.is_set()


def stopped():
    """:func:`message`, noted as told (the command's last line after a Ctrl-C; see :func:`untold`)."""
    _reported.set()
    return message()


def untold():
    """Whether a Ctrl-C reached the command but no :func:`stopped` message was printed (it was swallowed)."""
    return _pressed.is_set() and not _reported.is_set()


def _start_up_handler(signum, frame):
    _pressed.set()
    if _exit_now:  # only modules loading: nothing is written yet, nothing to undo
        os.write(_quiet.stderr_fd(), f"{message()}\n".encode())  # seen even while the import is silenced
        os._exit(130)
    raise KeyboardInterrupt


def start_up(exit_now=False):
    """Watch for a Ctrl-C from the command's first moment (main thread only; elsewhere nothing).

    A press is remembered (:func:`untold`) even where a library swallows the
    ``KeyboardInterrupt`` it raises (an import guarded by a bare ``except``),
    so that the command can still stop after the import instead of running to
    its end. With ``exit_now`` (while the command's own modules load) the
    process prints the message and exits with status 130 at once;
    :func:`started` ends that phase.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    _pressed.clear()
    _reported.clear()
    _exit_now[:] = [True] if exit_now else []
    signal.signal(signal.SIGINT, _start_up_handler)


def started():
    """The command's modules are loaded: a Ctrl-C now raises ``KeyboardInterrupt`` (remembered) instead."""
    _exit_now.clear()


@contextlib.contextmanager
def exit_at_once(enabled=True):
    """Inside the block (``enabled``), a Ctrl-C prints the message and exits with status 130 at once.

    For the command's import of TensorFlow, before it has written anything: an exception raised
    there can pass through TensorFlow's C++ start-up (a Python callback under a ``noexcept`` frame),
    which then aborts the process (status -6, its message hidden with the silenced import), and a
    bare ``except`` in an optional import can swallow it.
    """
    if not enabled:
        yield
        return
    _exit_now[:] = [True]
    try:
        yield
    finally:
        _exit_now.clear()


def watching():
    """Whether a :func:`graceful` block is active (so a Ctrl-C will be a request, not an exception)."""
    return _watching.is_set()


def check(*_):
    """Raise :class:`Interrupted` if a Ctrl-C arrived (ignores its arguments: usable as a callback)."""
    if _requested.is_set():
        _delivered.set()
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

    _requested.clear()  # before the handler: a press from now on is never cleared unseen
    _delivered.clear()
    previous = signal.signal(signal.SIGINT, handler)
    _watching.set()
    try:
        yield
        if not _delivered.is_set():
            check()  # a press after the last safe point (during the closing summary) still stops the command
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested.clear()
        _delivered.clear()
        _watching.clear()


def call(function, *args, stop=None):
    """``function(*args)``, stopped early by a Ctrl-C even while it runs one long native call.

    Python handles a signal only between bytecodes, so a compiled TensorFlow
    loop would hold a Ctrl-C until it returns. Inside :func:`graceful` (in the
    main thread) the call runs in a helper thread while this thread waits and
    watches for a stop request; on one, ``stop`` (a boolean ``tf.Variable``
    that the compiled loop checks each step) is set, the call is awaited and
    :class:`Interrupted` is raised: the call's result is discarded. ``stop`` is
    cleared again either way. Elsewhere the call is direct.
    """
    if not watching() or threading.current_thread() is not threading.main_thread():
        return function(*args)
    box = {}

    def run():
        try:
            box["value"] = function(*args)
        except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = error

    thread = threading.Thread(target=run, name="optimlab-call", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.05)
            check()
    except KeyboardInterrupt:
        if stop is not None:
            stop.assign(True)
            thread.join()
            stop.assign(False)
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]


def terminate(pool):
    """End a ``ProcessPoolExecutor``'s workers now (a Ctrl-C does not wait for their work), then close it."""
    for process in list((pool._processes or {}).values()):  # no public terminate before Python 3.14
        process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def result(future, pool):
    """``future.result()`` from ``pool``, watching for a Ctrl-C; on one the pool's workers are ended."""
    try:
        while True:
            check()
            try:
                return future.result(timeout=0.2)
            except concurrent.futures.TimeoutError:
                continue
    except KeyboardInterrupt:
        terminate(pool)
        raise


def worker_process(quiet):
    """Set up a worker process (a process pool's initializer).

    Ctrl-C is left to the parent, which stops the work; the worker ends itself
    when the parent is gone (``kill -9`` of the command), instead of training on
    for nobody; and the libraries load silently when the parent's did
    (:func:`optimlab._quiet.quiet` there).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="optimlab-parent-watch", daemon=True).start()
    if quiet:
        _quiet.import_libraries(verbose=False)

"""The one trace-once cache of compiled programs, used by both labs.

Tracing a ``tf.function`` costs seconds; computing with it, on these small
problems, milliseconds. Runs that differ only in values held in variables (the
seed's weights or start point, the learning rate and the other hyperparameters
an optimlab optimizer keeps in variables) can therefore share one traced
program: a new run copies its fresh state into the program's variables and
calls the program again, computing exactly what a new trace would. Both the
training lab (:mod:`optimlab.lab.training.runner.loop`) and the convergence lab
(:mod:`optimlab.lab.convergence.runner`) keep their programs here:

* :func:`optimizer_structure`: what two optimizers must share to use one program.
* :class:`ProgramCache`: programs by context and optimizer structure, most
  recently used last, the oldest dropped beyond a limit.
* :func:`load_fresh_state`: a fresh optimizer's variables copied into a traced one's.
* :func:`grappler`: Grappler options set while a program is instantiated.

Example::

    cache = ProgramCache(keep=8)
    program = cache.find(context, optimizer_structure(optimizer))
    if program is None:
        program = trace(...)                      # seconds, once
        cache.add(context, optimizer_structure(optimizer), program)
"""

import contextlib
import json

import tensorflow as tf


def _variable_backed(optimizer):
    """Names of the hyperparameters that live in variables (changing them needs no new trace)."""
    listing = getattr(optimizer, "variable_hyperparameters", None)  # Keras's own optimizers have none
    return set(listing()) if listing is not None else set()


def optimizer_structure(optimizer):
    """What must match for two optimizers to share a traced program: class, non-variable config, variables.

    The third part (the variables' shapes and dtypes) is ``repr(None)`` until
    the optimizer is built; a cache then compares the first two parts only.
    """
    config = {k: v for k, v in optimizer.get_config().items() if k not in _variable_backed(optimizer) | {"name"}}
    shapes = [(tuple(v.shape), str(v.dtype)) for v in optimizer.variables] if optimizer.built else None
    return type(optimizer), json.dumps(config, sort_keys=True, default=repr), repr(shapes)


def built(structure):
    """Whether ``structure`` (of :func:`optimizer_structure`) describes a built optimizer's variables."""
    return structure[2] != repr(None)


class ProgramCache:
    """Traced programs, each under a context (what the program computes on) and an optimizer structure.

    ``keep``: how many programs to keep (None: all); the least recently used
    one goes first. Contexts are compared with ``==``: put objects that are
    compared by identity (data sets, problems) in as ``id(...)``; the cached
    program holds them, so their ids stay theirs.
    """

    def __init__(self, keep=None):
        self.keep = keep
        self._entries = []  # [context, structure, program], most recently used last

    def find(self, context, structure):
        """The most recent program for ``context`` whose optimizer has ``structure`` (None if none).

        An unbuilt optimizer's structure matches on class and configuration;
        a built one's on its variables too.
        """
        for i, (mine, theirs, program) in enumerate(self._entries):
            if mine == context and (theirs == structure if built(structure) else theirs[:2] == structure[:2]):
                self._entries.append(self._entries.pop(i))
                return program
        return None

    def add(self, context, structure, program):
        """Keep ``program``; beyond ``keep`` programs, the least recently used is dropped."""
        self._entries.append((context, structure, program))
        if self.keep is not None and len(self._entries) > self.keep:
            self._entries.pop(0)
        return program

    def clear(self):
        self._entries.clear()

    def __len__(self):
        return len(self._entries)


def load_fresh_state(traced, fresh, variables):
    """Build ``fresh`` on ``variables``; copy its variables (slots, ``iterations``, hyperparameters) into ``traced``'s."""
    fresh.build(variables)
    for mine, value in zip(traced.variables, fresh.variables, strict=True):
        mine.assign(value)


@contextlib.contextmanager
def grappler(**options):
    """Set Grappler's experimental ``options`` for the block (a program's first call instantiates it).

    The training lab skips Grappler's rewrites (``disable_meta_optimizer``:
    about a second per program, no measurable gain on these loops); the
    convergence lab keeps the eager float arithmetic
    (``arithmetic_optimization=False``: ``pow(x, 3)`` stays ``pow``, so the
    compiled loop follows the eager one bit for bit). Every run of a program
    uses its one instantiation, so results do not depend on the order of
    runs. The process-wide options are restored after.
    """
    defaults = {"disable_meta_optimizer": False, "arithmetic_optimization": True}
    before = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options(options)
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({k: before.get(k, defaults.get(k)) for k in options})

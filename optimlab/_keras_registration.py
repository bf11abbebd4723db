"""Every class of optimlab's that Keras can save is registered once TensorFlow is loaded.

Keras finds the class of a saved object by its registered name ("optimlab>Adam"),
and a class is registered when its module runs. ``import optimlab`` itself must
stay light (the command answers ``--help`` without TensorFlow), so the registering
modules run as soon as the first import that loaded TensorFlow and Keras is over:
at once when they are loaded already, otherwise right after that import ends, so
before any ``keras.models.load_model`` of the program can run.

An import "ends" when the outermost import that this thread started through
TensorFlow, Keras or optimlab's own modules is done: registering in the middle of
``optimlab.optimizer``'s own import would read half-initialised modules.
"""

import importlib
import importlib.util
import sys
import threading

# The modules whose import registers every optimizer, wrapper, schedule and legacy class.
REGISTERING_MODULES = ("optimlab.optimizers", "optimlab.wrappers", "optimlab.schedules", "optimlab.sam",
                       "optimlab.legacy")
_WATCHED = ("tensorflow", "keras")


def register_all():
    """Import every registering module (idempotent)."""
    for name in REGISTERING_MODULES:
        importlib.import_module(name)


def _libraries_loaded():
    return all(name in sys.modules for name in _WATCHED)


class _RegisterAfterImport:
    """A meta-path finder that counts the imports under way in each thread and registers after the last."""

    def __init__(self):
        self._local = threading.local()
        self._done = False

    def _depth(self):
        return getattr(self._local, "depth", 0)

    def find_spec(self, name, path=None, target=None):
        watched = name in _WATCHED or name.startswith("optimlab.")
        if self._done or not watched or getattr(self._local, "searching", False):
            return None
        self._local.searching = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._local.searching = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            self._local.depth = self._depth() + 1
            try:
                run(module)
            finally:
                self._local.depth -= 1
            if self._depth() == 0 and _libraries_loaded():
                self.finish()

        spec.loader.exec_module = exec_module
        return spec

    def finish(self):
        if self._done:
            return
        self._done = True
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        register_all()


def install():
    """Register now if TensorFlow and Keras are loaded, else after the import that loads them."""
    if any(isinstance(finder, _RegisterAfterImport) for finder in sys.meta_path):
        return
    finder = _RegisterAfterImport()
    if _libraries_loaded():
        finder.finish()
    else:
        sys.meta_path.insert(0, finder)

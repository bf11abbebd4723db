"""Many convergence tests in one compiled program: the runs of an optimizer side by side.

Runs that differ only in values an optimlab optimizer keeps in variables (the
learning rate and its other number hyperparameters) or in their start point
train together: their parameters are stacked along a new leading axis (run
``i`` in row ``i``), every such hyperparameter becomes one float64 variable of
shape ``(runs, 1, ..., 1)`` (run ``i``'s value in row ``i``), and one optimizer
updates the stack, so its slots hold every run's state. Each iteration takes
every run's gradient of its own loss, judges every run by the one-run test's
own operations (:mod:`optimlab.lab.convergence.stopping`), and updates only the
runs still going: a run that stopped or exploded gets a zero gradient and keeps
its parameter, so its last value stays its final one and a NaN or infinity of
one run never reaches another. The loop ends when every run has stopped (or at
``max_iters``); each run's iteration count, status and path are its own.

This is exact only where the update of every entry of a variable depends on
that entry alone. :func:`SideBySide.build` therefore traces the update on the
stack (in a nested ``tf.function`` of its own) and reads the operation types
of that trace: any operation outside :data:`ENTRYWISE_OPS` (a norm, a sum over
entries, a matrix product, a reshape...) means the update mixes entries (LARS,
LAMB, Muon, NovoGrad, Adafactor, Prodigy, ConditionalGradient, any optimizer
with ``clipnorm``, ``global_clipnorm`` or ``skip_nonfinite``...), and the
runs fall back to one program per run. So does any optimizer that is not an
``optimlab.Optimizer`` (a Keras or Keras 2 optimizer, the guide's plain
objects), whose hyperparameters cannot be given per run, and any update that
fails to trace on the stack. The fallback's reason is returned as a note.

The stack always takes the readable ``update_step`` (``fused=False``): the
native kernels take one learning rate per call. They are bit-identical to it
(``tests/test_fused.py``), so each run's result equals the run computed alone,
bit for bit (``tests/lab/convergence/test_side_by_side.py`` checks every
registered optimizer).
"""

import dataclasses
import re

import numpy as np
import tensorflow as tf

from optimlab import _interrupt
from optimlab.lab import programs
from optimlab.lab.convergence.stopping import EXPLODED, RUNNING, exploded_before_update, start_gradient_norm, \
    status_code, stop_flag

# Operations that compute each output entry from the same entry of their inputs
# (with scalars broadcast), or move no numbers between entries.
ENTRYWISE_OPS = frozenset("""
    Snapshot Squeeze Abs Acos Acosh Add AddV2 Asin Asinh Atan Atan2 Atanh Cast Ceil ClipByValue Const Cos Cosh Div DivNoNan Equal Erf
    Erfc Exp Expm1 Fill Floor FloorDiv FloorMod Greater GreaterEqual Identity IdentityN If Inv IsFinite IsInf IsNan
    Less LessEqual Log Log1p LogicalAnd LogicalNot LogicalOr Maximum Minimum Mod Mul MulNoNan Neg NoOp NotEqual
    OnesLike Placeholder Pow RealDiv Reciprocal Relu Rint Round Rsqrt Select SelectV2 Sigmoid Sign Sin Sinh Softplus
    Softsign Sqrt Square SquaredDifference StatelessIf StopGradient Sub Tan Tanh TruncateDiv Xdivy Xlog1py Xlogy
    ZerosLike ReadVariableOp AssignVariableOp AssignAddVariableOp AssignSubVariableOp
""".split())


UPDATE_SCOPE = "side_by_side_update"  # the name scope of the optimizer's update in the program
_IN_UPDATE = re.compile(rf"(^|/){UPDATE_SCOPE}(_\d+)?/")


class NotSideBySide(Exception):
    """The runs cannot share one program; the message says why (the runs' note)."""


_VERDICTS = {}  # (class, configuration, dtype, rank) -> why runs of that optimizer cannot be stacked


def verdict(structure, dtype, rank):
    """Why runs of an optimizer of ``structure`` (:func:`programs.optimizer_structure`) cannot be stacked, as
    found earlier in this process for the dtype and the stack's rank; ``""`` when not known to fail."""
    return _VERDICTS.get((structure[0], structure[1], str(dtype), rank), "")


def remember(structure, dtype, rank, reason):
    """Keep ``reason`` (a failed :meth:`SideBySide.build`), so later tables skip the attempt."""
    _VERDICTS[(structure[0], structure[1], str(dtype), rank)] = reason


def update_op_types(concrete):
    """The operation types of the optimizer's update in a traced program: the nodes made under
    :data:`UPDATE_SCOPE` (in the loop's body) and every node of the functions they call (cond branches...)."""
    graph_def = concrete.graph.as_graph_def()
    library = {function.signature.name: function for function in graph_def.library.function}
    types, seen = set(), set()

    def take(node):
        types.add(node.op)
        for attr in node.attr.values():
            for name in [attr.func.name] + [f.name for f in attr.list.func]:
                if name in library and name not in seen:
                    seen.add(name)
                    for inner in library[name].node_def:
                        take(inner)

    for nodes in [graph_def.node] + [function.node_def for function in library.values()]:
        for node in nodes:
            if _IN_UPDATE.search(node.name):
                take(node)
    return types


def per_run_names(optimizers):
    """The hyperparameters in which the runs' optimizers differ, sorted; each must live in a variable (raises
    :class:`NotSideBySide` otherwise, and for optimizers that are not optimlab ones)."""
    first = optimizers[0]
    listing = getattr(first, "variable_hyperparameters", None)
    if listing is None or not hasattr(first, "_get_hyper"):
        raise NotSideBySide("ran alone: only an optimlab optimizer's hyperparameters can be given per run")
    structure = programs.optimizer_structure(first)[:2]
    if any(programs.optimizer_structure(opt)[:2] != structure for opt in optimizers[1:]):
        raise NotSideBySide("ran alone: the runs' optimizers differ in more than hyperparameters held in variables")
    values = _per_run_values(optimizers, sorted(listing()))
    return [name for name, v in values.items() if np.any(v != v[0])]


def _per_run_values(optimizers, names):
    """``{name: float64 array (runs,)}``: each run's value of hyperparameters ``names``."""
    return {name: np.array([float(opt._get_hyper(name, tf.float64)) for opt in optimizers]) for name in names}


@dataclasses.dataclass
class SideBySide:
    """One program that runs several convergence tests of one optimizer structure side by side.

    Build it with :meth:`build`; :meth:`reset` loads new runs of the same count,
    function and settings (no new trace); :meth:`run` returns each run's
    iterations, status code and path.
    """

    x: tf.Variable  # (runs,) + the parameter's shape
    starts: tf.Variable  # each run's gradient norm at its start
    hypers: dict  # name -> tf.Variable (runs, 1, ..., 1), float64: the hyperparameters the runs differ in
    optimizer: object  # the optimizer traced into the program (its slots: every run's)
    program: object

    @classmethod
    def build(cls, fn, values, traced, optimizers, rules, max_iters, jit_compile):
        """Trace the program for runs starting at ``values`` (stacked) with ``optimizers`` (fresh, one per run).

        ``traced`` is a fresh optimizer of the same structure (one of them, or
        one more), the one the program holds; the hyperparameters in which the
        runs differ (:func:`per_run_names`, read before anything changes) become
        per-run variables in it, the others stay its own. Raises :class:`NotSideBySide` (with the note) where the
        runs cannot share it.
        """
        names = per_run_names([traced] + [opt for opt in optimizers if opt is not traced])
        values = tf.convert_to_tensor(values)
        runs, rank = int(values.shape[0]), values.shape.rank - 1
        x = tf.Variable(values, name="x")
        hypers = {name: tf.Variable(np.reshape(v, (runs,) + (1,) * rank), dtype=tf.float64, trainable=False,
                                    name=f"{name}_per_run")
                  for name, v in _per_run_values(optimizers, names).items()}
        for name, variable in hypers.items():
            traced._set_hyper(name, variable)
        traced.fused = False  # the readable update_step: the native kernels take one learning rate per call
        traced.build([x])
        starts = tf.Variable(_start_norms(fn, values), name="start_gradient_norms")
        update = lambda g: traced.apply([g], [x])  # noqa: E731
        program = _program(fn, x, starts, update, rules, max_iters, jit_compile)
        try:
            program.get_concrete_function()
        except Exception as error:  # noqa: BLE001 - any tracing failure means: one run per program
            message = str(error).strip().splitlines()[0][:120] if str(error).strip() else ""
            raise NotSideBySide(f"ran alone: its update cannot run on stacked runs ({type(error).__name__}: "
                                f"{message})") from error
        types = update_op_types(program.get_concrete_function())
        mixing = sorted(types - ENTRYWISE_OPS) if types else ["its update could not be found in the program"]
        if mixing:
            raise NotSideBySide(
                f"ran alone: its update mixes a variable's entries ({', '.join(mixing)}), so runs cannot be stacked")
        return cls(x, starts, hypers, traced, program)

    def reset(self, fn, values, fresh, optimizers):  # fresh may be one of optimizers
        """Load new runs (same count, shape, optimizer structure and :func:`per_run_names`): start points, the
        state and common hyperparameters of ``fresh`` (a new optimizer of the structure), each run's own."""
        self.x.assign(values)
        programs.load_fresh_state(self.optimizer, fresh, [self.x])
        for name, value in _per_run_values(optimizers, sorted(self.hypers)).items():
            self.hypers[name].assign(np.reshape(value, self.hypers[name].shape))
        self.starts.assign(_start_norms(fn, values))

    def run(self):
        """``(iterations, codes, paths)``: per run, its iteration count, status code and path (``iterations + 1``
        parameter values), from one call of the program."""
        with programs.grappler(arithmetic_optimization=False):  # the eager float arithmetic, bit for bit
            t, codes, path = (np.asarray(v) for v in _interrupt.call(self.program, stop=stop_flag()))
        paths = [path[: int(t[i]) + 1, i] for i in range(len(t))]
        return [int(v) for v in t], [int(c) for c in codes], paths


def _start_norms(fn, values):
    """Each run's gradient norm at its start, computed eagerly as the one-run test does."""
    return tf.stack([start_gradient_norm(fn, v) for v in tf.unstack(tf.convert_to_tensor(values))])


def _program(fn, x, starts, update, rules, max_iters, jit_compile):
    """The loop of every run at once: one ``tf.while_loop`` until every run has stopped."""
    stop = stop_flag()
    runs, rank = int(x.shape[0]), x.shape.rank - 1

    def gradient(v):
        with tf.GradientTape() as tape:
            tape.watch(v)
            loss = fn.fn(v)
        return tape.gradient(loss, v)

    def step(codes):
        running = tf.equal(codes, RUNNING)
        old = x.read_value()
        g = tf.vectorized_map(gradient, old)  # run i's gradient of its own loss, in row i
        bad = exploded_before_update(old, g, rules, rows=True)
        going = tf.reshape(tf.logical_and(running, tf.logical_not(bad)), (runs,) + (1,) * rank)
        with tf.name_scope(UPDATE_SCOPE):
            update(tf.where(going, g, tf.zeros_like(g)))
        new = tf.where(going, x.read_value(), old)
        x.assign(new)
        judged = tf.where(bad, tf.constant(EXPLODED), status_code(old, new, g, rules, starts, rows=True))
        return tf.where(running, judged, codes)

    @tf.function(jit_compile=jit_compile, autograph=False)
    def loop():
        path = tf.TensorArray(x.dtype, size=max_iters + 1, element_shape=x.shape)
        path = path.write(0, x.read_value())

        def keep_going(t, codes, stopped_at, path):
            return tf.reduce_any(tf.equal(codes, RUNNING)) & (t < max_iters) & ~stop.read_value()

        def body(t, codes, stopped_at, path):
            new_codes = step(codes)
            stopped_now = tf.logical_and(tf.equal(codes, RUNNING), tf.not_equal(new_codes, RUNNING))
            stopped_at = tf.where(stopped_now, t + 1, stopped_at)
            return t + 1, new_codes, stopped_at, path.write(t + 1, x.read_value())

        start = (tf.constant(0), tf.fill([runs], RUNNING), tf.zeros([runs], tf.int32), path)
        t, codes, stopped_at, path = tf.while_loop(keep_going, body, start)
        return tf.where(stopped_at > 0, stopped_at, t), codes, path.stack()

    return loop

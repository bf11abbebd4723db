"""Many convergence tests in one compiled program: the runs of several optimizers side by side.

Runs that differ only in values an optimlab optimizer keeps in variables (the
learning rate and its other number hyperparameters) or in their start point
train together in a group: their parameters are stacked along a new leading
axis (run ``i`` in row ``i``), every such hyperparameter becomes one float64
variable of shape ``(runs, 1, ..., 1)`` (run ``i``'s value in row ``i``), and
one optimizer updates the stack, so its slots hold every run's state. One
program holds several groups (one per optimizer of a table: each its own
stacked parameter, traced optimizer and per-run variables); everything else is
computed once for every run of every group. Each iteration takes every run's
gradient of its own loss (each on a tensor of the run's own shape, as the
one-run test does: on 8 entries or more, TensorFlow's CPU kernels for ``pow``,
``exp``, ``log``, ``rsqrt``... take vectorized code paths that round
differently in the last bit), judges every run by the one-run test's own
operations (:mod:`optimlab.lab.convergence.stopping`), and updates every run:
as each entry's update depends on that entry alone (checked, see below), a run
that stopped or exploded changes only its own rows, which nothing reads after
its stop (its path ends there; a NaN or infinity of one run never reaches
another), and masking its gradient and parameter would cost every iteration
five operations more. The loop ends when every run has stopped (or at
``max_iters``); each run's iteration count, status and path are its own.

This is exact only where the update of every entry of a variable depends on
that entry alone. :func:`SideBySide.build` therefore traces the program and
reads the operation types of each group's update (made under a name scope of
its own): any operation outside :data:`ENTRYWISE_OPS` (a norm, a sum over
entries, a matrix product, a reshape...) means the update mixes entries (LARS,
LAMB, Muon, NovoGrad, Adafactor, Prodigy, ConditionalGradient, any optimizer
with ``clipnorm``, ``global_clipnorm`` or ``skip_nonfinite``...), and that
group's runs fall back to one program per run, the other groups sharing a
program without it. So does any optimizer that is not an
``optimlab.Optimizer`` (a Keras or Keras 2 optimizer, the guide's plain
objects), whose hyperparameters cannot be given per run, and any update that
fails to trace on the stack, and any update that applies a function of
:data:`VECTOR_ROUNDED_OPS` (``exp``, ``log``, ``pow``, ``tanh``...) to more
than a few entries: TensorFlow's CPU kernels compute those on a vectorized
path from one SIMD register of entries on, which may round the last bit
differently (a scalar such as ``beta ** t`` is fine, and so is a per-run
``beta_1 ** t`` of fewer runs than :data:`VECTOR_BYTES` holds). The fallback's
reason is returned as a note.

The stack always takes the readable ``update_step`` (``fused=False``): the
native kernels take one learning rate per call. They are bit-identical to it
(``tests/test_fused.py``), so each run's result equals the run computed alone,
bit for bit (``tests/lab/convergence/test_side_by_side.py`` checks every
registered optimizer, and tables that mix them).
"""

import dataclasses
import platform
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

# Entrywise functions whose TensorFlow CPU kernels take a vectorized code path on
# tensors of at least one SIMD register of entries (8 float32 on this project's
# machine), which may round the last bit differently from the scalar path (and
# from another position of the entry in the tensor): applied to a stack of runs,
# they could give a run other numbers than it gets alone. ``VECTOR_BYTES``: the
# register TensorFlow's builds vectorize with, AVX's 32 bytes on x86 (its wheels
# need AVX) and NEON's 16 elsewhere.
VECTOR_BYTES = 32 if platform.machine().lower() in ("x86_64", "amd64") else 16
VECTOR_ROUNDED_OPS = frozenset("""
    Acos Acosh Asin Asinh Atan Atan2 Atanh Cos Cosh Erf Erfc Exp Expm1 Log Log1p Pow Rsqrt Sigmoid Sin Sinh
    Softplus Tan Tanh Xlog1py Xlogy
""".split())

UPDATE_SCOPE = "side_by_side_update"  # group k's update is made under the name scope f"{UPDATE_SCOPE}_g{k}"


class NotSideBySide(Exception):
    """Runs cannot share one program; the message says why (the runs' note). ``reasons``: ``{group index:
    note}`` for the groups of a program that cannot (the others may), None where no group can be named."""

    def __init__(self, note, reasons=None):
        super().__init__(note)
        self.reasons = reasons


_VERDICTS = {}  # (class, configuration, dtype, rank) -> why runs of that optimizer cannot be stacked


def verdict(structure, dtype, rank):
    """Why runs of an optimizer of ``structure`` (:func:`programs.optimizer_structure`) cannot be stacked, as
    found earlier in this process for the dtype and the stack's rank; ``""`` when not known to fail."""
    return _VERDICTS.get((structure[0], structure[1], str(dtype), rank), "")


def remember(structure, dtype, rank, reason):
    """Keep ``reason`` (a failed :meth:`SideBySide.build`), so later tables skip the attempt."""
    _VERDICTS[(structure[0], structure[1], str(dtype), rank)] = reason


def update_ops(concrete, groups=1):
    """Per group, the operations of its optimizer's update in a traced program: those made under its scope
    (``{UPDATE_SCOPE}_g{k}`` in the loop's body) and every operation of the functions they call (cond
    branches...); an empty list where none is found."""
    graphs = {}

    def collect(graph):  # the program's nested functions (the loop's body, cond branches), by name
        for name, function in getattr(graph, "_functions", {}).items():
            if name not in graphs and hasattr(function, "graph"):
                graphs[name] = function.graph
                collect(function.graph)

    collect(concrete.graph)

    def take(op, found, seen):
        found.append(op)
        for value in op.node_def.attr.values():
            for name in [value.func.name] + [f.name for f in value.list.func]:
                if name in graphs and name not in seen:
                    seen.add(name)
                    for inner in graphs[name].get_operations():
                        take(inner, found, seen)

    every = [op for graph in [concrete.graph, *graphs.values()] for op in graph.get_operations()]
    per_group = []
    for k in range(groups):
        scope = re.compile(rf"(^|/){UPDATE_SCOPE}_g{k}(_\d+)?/")
        found, seen = [], set()
        for op in every:
            if scope.search(op.name):
                take(op, found, seen)
        per_group.append(found)
    return per_group


def _vectorized(tensor):
    """Whether a kernel may compute ``tensor`` on its vectorized path: at least :data:`VECTOR_BYTES` of
    entries, or an unknown size."""
    entries = tensor.shape.num_elements()
    return entries is None or (entries > 1 and entries * tensor.dtype.size >= VECTOR_BYTES)


def _why_alone(ops):
    """Why the runs of a group whose update is ``ops`` (:func:`update_ops`) cannot be stacked; ``""`` if they can."""
    if not ops:
        return "ran alone: its update mixes a variable's entries (its update could not be found in the program), " \
               "so runs cannot be stacked"
    mixing = sorted({op.type for op in ops} - ENTRYWISE_OPS)
    if mixing:
        return f"ran alone: its update mixes a variable's entries ({', '.join(mixing)}), so runs cannot be stacked"
    rounded = sorted({op.type for op in ops if op.type in VECTOR_ROUNDED_OPS and any(map(_vectorized, op.outputs))})
    if rounded:
        return (f"ran alone: its update applies {', '.join(rounded)} to each entry, whose CPU kernels round "
                "differently on a stack of runs than on one run")
    return ""


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
class Group:
    """One optimizer's runs in the program: their stacked parameter, their own hyperparameters, its optimizer."""

    x: tf.Variable  # (runs,) + the parameter's shape: run i in row i
    hypers: dict  # name -> tf.Variable (runs, 1, ..., 1), float64: the hyperparameters the runs differ in
    optimizer: object  # the optimizer traced into the program (its slots: every run's)

    @classmethod
    def make(cls, values, traced, optimizers):
        """The variables of runs starting at ``values`` (stacked) with ``optimizers`` (fresh, one per run).

        ``traced`` is a fresh optimizer of the same structure (one of them, or
        one more), the one the program holds; the hyperparameters in which the
        runs differ (:func:`per_run_names`, read before anything changes)
        become per-run variables in it, the others stay its own.
        """
        names = per_run_names([traced] + [opt for opt in optimizers if opt is not traced])
        runs, rank = int(values.shape[0]), values.shape.rank - 1
        x = tf.Variable(values, name="x")
        hypers = {name: tf.Variable(np.reshape(v, (runs,) + (1,) * rank), dtype=tf.float64, trainable=False,
                                    name=f"{name}_per_run")
                  for name, v in _per_run_values(optimizers, names).items()}
        for name, variable in hypers.items():
            traced._set_hyper(name, variable)
        traced.fused = False  # the readable update_step: the native kernels take one learning rate per call
        traced.build([x])
        return cls(x, hypers, traced)

    def reset(self, values, fresh, optimizers):  # fresh may be one of optimizers
        """Load new runs (same count, shape, structure and :func:`per_run_names`): start points, the state and
        common hyperparameters of ``fresh`` (a new optimizer of the structure), each run's own."""
        self.x.assign(values)
        programs.load_fresh_state(self.optimizer, fresh, [self.x])
        for name, value in _per_run_values(optimizers, sorted(self.hypers)).items():
            self.hypers[name].assign(np.reshape(value, self.hypers[name].shape))


@dataclasses.dataclass
class SideBySide:
    """One program that runs the convergence tests of several optimizers side by side, a group per optimizer.

    Build it with :meth:`build`; :meth:`reset` loads new runs of the same
    groups, function and settings (no new trace); :meth:`run` returns each
    run's iterations, status code and path, groups in order.
    """

    groups: list  # of Group, in the order of the rows
    starts: tf.Variable  # each run's gradient norm at its start
    program: object

    @classmethod
    def build(cls, fn, values, optimizers, rules, max_iters, jit_compile):
        """Trace the program for runs starting at ``values`` (stacked, every group's rows in order).

        ``optimizers``: per group, ``(traced, runs)`` as for :meth:`Group.make`.
        Raises :class:`NotSideBySide` where runs cannot share the program: its
        ``reasons`` name the groups that cannot (their notes), or are None
        when the program failed to trace as a whole.
        """
        values = tf.convert_to_tensor(values)
        sizes = [len(runs) for _, runs in optimizers]
        if sum(sizes) != values.shape[0]:
            raise ValueError(f"the groups hold {sum(sizes)} runs; got {values.shape[0]} start points")
        groups, reasons = [], {}
        for k, ((traced, runs), rows) in enumerate(zip(optimizers, tf.split(values, sizes))):
            try:
                groups.append(Group.make(rows, traced, runs))
            except NotSideBySide as reason:
                reasons[k] = str(reason)
        if reasons:
            raise NotSideBySide("; ".join(reasons.values()), reasons)
        starts = tf.Variable(_start_norms(fn, values), name="start_gradient_norms")
        program = _program(fn, groups, starts, rules, max_iters, jit_compile)
        try:
            concrete = program.get_concrete_function()
        except Exception as error:  # noqa: BLE001 - any tracing failure means: not this program
            message = str(error).strip().splitlines()[0][:120] if str(error).strip() else ""
            note = f"ran alone: its update cannot run on stacked runs ({type(error).__name__}: {message})"
            raise NotSideBySide(note, {0: note} if len(groups) == 1 else None) from error
        for k, ops in enumerate(update_ops(concrete, len(groups))):
            reasons[k] = _why_alone(ops)
        reasons = {k: reason for k, reason in reasons.items() if reason}
        if reasons:
            raise NotSideBySide("; ".join(reasons.values()), reasons)
        return cls(groups, starts, program)

    def reset(self, fn, values, optimizers):
        """Load new runs: ``values`` as for :meth:`build`, ``optimizers`` per group ``(fresh, runs)``."""
        values = tf.convert_to_tensor(values)
        for group, (fresh, runs), rows in zip(self.groups, optimizers, tf.split(values, self.sizes()), strict=True):
            group.reset(rows, fresh, runs)
        self.starts.assign(_start_norms(fn, values))

    def sizes(self):
        """The number of runs of each group."""
        return [int(group.x.shape[0]) for group in self.groups]

    def run(self):
        """``(iterations, codes, paths)``: per run (groups in order), its iteration count, status code and path
        (``iterations + 1`` parameter values), from one call of the program."""
        with programs.grappler(arithmetic_optimization=False):  # the eager float arithmetic, bit for bit
            t, codes, path = (np.asarray(v) for v in _interrupt.call(self.program, stop=stop_flag()))
        paths = [path[: int(t[i]) + 1, i] for i in range(len(t))]
        return [int(v) for v in t], [int(c) for c in codes], paths


def _start_norms(fn, values):
    """Each run's gradient norm at its start, computed eagerly as the one-run test does (once per start point)."""
    norms, rows = {}, []
    for value in tf.unstack(values):
        key = value.numpy().tobytes()
        if key not in norms:
            norms[key] = start_gradient_norm(fn, value)
        rows.append(norms[key])
    return tf.stack(rows)


def _program(fn, groups, starts, rules, max_iters, jit_compile):
    """The loop of every run of every group at once: one ``tf.while_loop`` until every run has stopped."""
    stop = stop_flag()
    xs = [group.x for group in groups]
    sizes = [int(x.shape[0]) for x in xs]
    runs = sum(sizes)

    @tf.function(autograph=False)  # traced once, called once per run
    def gradient(v):
        with tf.GradientTape() as tape:
            tape.watch(v)
            loss = fn.fn(v)
        return tape.gradient(loss, v)

    def stack():
        """Every run's parameter, groups in order."""
        return tf.concat([x.value() for x in xs], axis=0) if len(xs) > 1 else xs[0].value()

    def step(codes, running):
        old = stack()
        g = tf.stack([gradient(v) for v in tf.unstack(old)])  # run i's gradient of its own loss, in row i
        bad = exploded_before_update(old, g, rules, rows=True)
        for k, (group, g_k) in enumerate(zip(groups, tf.split(g, sizes) if len(xs) > 1 else [g])):
            with tf.name_scope(f"{UPDATE_SCOPE}_g{k}"):
                group.optimizer.apply([g_k], [group.x])  # every run, stopped or not: each on its own rows
        new = stack()
        judged = tf.where(bad, tf.constant(EXPLODED), status_code(old, new, g, rules, starts, rows=True))
        return tf.where(running, judged, codes), new

    @tf.function(jit_compile=jit_compile, autograph=False)
    def loop():
        path = tf.TensorArray(xs[0].dtype, size=max_iters + 1, element_shape=(runs,) + tuple(xs[0].shape[1:]))
        path = path.write(0, stack())

        def keep_going(t, codes, counts, path):
            return tf.reduce_any(tf.equal(codes, RUNNING)) & (t < max_iters) & ~stop.read_value()

        def body(t, codes, counts, path):
            running = tf.equal(codes, RUNNING)
            codes, new = step(codes, running)
            counts = tf.where(running, t + 1, counts)  # the iterations each run has taken
            return t + 1, codes, counts, path.write(t + 1, new)

        start = (tf.constant(0), tf.fill([runs], RUNNING), tf.zeros([runs], tf.int32), path)
        _, codes, counts, path = tf.while_loop(keep_going, body, start)
        return counts, codes, path.stack()

    return loop

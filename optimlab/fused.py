"""Fast paths: how an optimizer's fused kernels are registered and dispatched.

An optimizer step is memory-bound. Written as separate TensorFlow operations, an
Adam step reads and writes each moment several times; a fused kernel reads
parameter, gradient and state once. Two kinds serve here: TensorFlow's
``ResourceApply*`` kernels (one multithreaded Eigen expression per variable, the
kernels Keras 2 used; Keras 3 uses none of them) and optimlab's own single-pass
CPU kernels (``optimlab.kernels``, compiled with g++ on first use).

This module holds only the mechanism. Each fast path lives in its optimizer's
module, beside the ``update_step`` it must equal, registered by class::

    @fused.fast_path(Adam)                   # fn(optimizer, gradient, variable, learning_rate)
    def _adam_kernel(opt, gradient, variable, learning_rate): ...

    @fused.native_kernel(Adam, "adam")       # spec(optimizer, learning_rate, dtype)
    def _adam_native(opt, learning_rate, dtype): ...

Dispatch is by class, through the MRO: an optimizer gets the fast path of the
nearest class in ``type(optimizer).__mro__`` that registered one, and only if it
runs that class's very ``update_step`` (and, for a sparse gradient,
``sparse_update_step``). So ``class MyAdam(optimlab.Adam): pass`` keeps Adam's
fast path, and a subclass that overrides the update rule runs its own rule.

A fast path computes the same update as ``update_step``, in the optimizer's own
slots, up to floating-point rounding (tested in float64 against the plain path),
and returns ``DECLINED`` where its kernel cannot express the configuration; the
plain path then runs instead. A class that registers only a native kernel gets
the native single-tensor op as its fast path (declined where it cannot run).

Native kernels compute each element with the plain path's operations in the
same order and precision, so their results are bit-identical to ``update_step``
in float32 and float64, eagerly and inside ``tf.function`` (tested; the plain
path keeps Grappler from rewriting ``x / sqrt(y)``), except ConditionalGradient's,
whose op also takes the gradient's norm (summing in double, so equal up to
rounding). They run for variables on the CPU outside XLA; elsewhere, when the
library cannot be built, or with ``OPTIMLAB_NATIVE=0``, TensorFlow's kernels
(or, where TensorFlow has none for a configuration, the plain path) run.

Multi-tensor: outside tf.distribute, ``apply_many`` updates every dense
gradient's variable that the native kernels can take with ONE op per dtype
(``OptimlabMultiApply*``: one parallel pass over the concatenated elements), so
a step over a hundred variables pays one op launch instead of a hundred. The
rest (sparse gradients, optimizers without a native kernel, XLA,
MirroredStrategy) goes through the per-variable path (``apply``), where the
single-tensor ops run.

Weight decay: for optimizers with a native kernel, the base class hands
decoupled weight decay (``weight_decay``) to ``apply_many``, which folds it into
the same pass (``x - x*(wd*lr)`` first, with the plain path's arithmetic);
variables excluded from decay take a second op, and the per-variable path
decays each variable just before its update.

Sparse gradients: where an optimizer's sparse rule is the lazy one (only the
indexed rows of variable and state change), its fast path may be registered
with ``sparse=True`` and run TensorFlow's ``ResourceSparseApply*`` kernels on the
deduplicated rows, under the same ``fused`` setting and ``MIN_SIZE`` rule.

Switch: every optimizer takes ``fused=None`` (the default), ``True`` (always) or
``False`` (never). Under ``None`` the native multi-tensor op takes variables of
every size, since it is bit-identical to the plain path; the other kernels
(TensorFlow's, equal only up to rounding) run for variables with at least
``MIN_SIZE`` elements, so small problems such as the convergence lab keep the
readable path's exact arithmetic.
"""

import dataclasses
import functools

import keras
import tensorflow as tf
from tensorflow.python.framework import ops
from tensorflow.python.ops import control_flow_util

from optimlab import kernels

MIN_SIZE = 4096
DECLINED = "declined"
_DTYPES = (tf.float32, tf.float64)


@dataclasses.dataclass
class _FastPath:
    """What one optimizer class registered: a per-variable kernel call and/or a native kernel."""

    owner: type
    apply: object = None  # fn(optimizer, gradient, variable, learning_rate), or None: the native single-tensor op
    sparse: bool = False  # ``apply`` also takes deduplicated ``tf.IndexedSlices``
    kernel: str = None  # the native op's name, e.g. "adam" for OptimlabApplyAdam / OptimlabMultiApplyAdam
    spec: object = None  # spec(optimizer, learning_rate, dtype) -> (slots, coefficients, attrs) or DECLINED


_REGISTERED = {}


def _registration(cls):
    return _REGISTERED.setdefault(cls, _FastPath(owner=cls))


def fast_path(cls, sparse=False):
    """Register ``fn(optimizer, gradient, variable, learning_rate)`` as ``cls``'s fast path.

    ``fn`` runs a fused kernel in the optimizer's slots and returns the op, or
    ``DECLINED``. With ``sparse`` it also takes deduplicated ``tf.IndexedSlices``
    gradients (for optimizers whose sparse rule is the lazy one TensorFlow's
    ``ResourceSparseApply*`` kernels implement).
    """

    def decorate(fn):
        found = _registration(cls)
        found.apply, found.sparse = fn, sparse
        return fn

    return decorate


def native_kernel(cls, kernel):
    """Register ``spec(optimizer, learning_rate, dtype)`` for ``cls``'s native op ``kernel`` (e.g. ``"adam"``).

    ``spec`` returns the slot names (in the op's handle order), the coefficient
    vector and the op's attributes, or ``DECLINED`` for a configuration the op
    cannot express.
    """

    def decorate(fn):
        found = _registration(cls)
        found.kernel, found.spec = kernel, fn
        return fn

    return decorate


def fast_path_of(cls):
    """The registration that applies to instances of ``cls``, or None.

    It is that of the nearest class in ``cls.__mro__`` that registered one, and
    only if ``cls`` keeps that class's ``update_step``: a subclass that overrides
    the update rule must never run a kernel written for its parent's.
    """
    for base in cls.__mro__:
        found = _REGISTERED.get(base)
        if found is not None:
            return found if cls.update_step is base.update_step else None
    return None


def has_fast_path(optimizer):
    return fast_path_of(type(optimizer)) is not None


def _takes_sparse(found, optimizer):
    return found.sparse and type(optimizer).sparse_update_step is found.owner.sparse_update_step


def wanted(optimizer, variable):
    """Whether the fused kernel should run for this variable under the ``fused`` setting."""
    setting = getattr(optimizer, "fused", None)
    if setting is False or not has_fast_path(optimizer):
        return False
    if tf.as_dtype(variable.dtype) not in _DTYPES:
        return False
    if setting is None:
        size = variable.shape.num_elements()
        return size is not None and size >= MIN_SIZE
    return True


def apply(optimizer, gradient, variable, learning_rate):
    """Run the fused kernel; False when it cannot express this configuration.

    A ``tf.IndexedSlices`` gradient (deduplicated by the caller) runs only where
    the fast path was registered with ``sparse=True`` and the optimizer keeps the
    registering class's ``sparse_update_step``.
    """
    found = fast_path_of(type(optimizer))
    if found is None:
        return False
    if isinstance(gradient, tf.IndexedSlices) and not _takes_sparse(found, optimizer):
        return False
    run = found.apply or native_single
    return run(optimizer, gradient, variable, learning_rate) is not DECLINED


# ------------------------------------------------------------ for fast paths
def resource_apply(kernel, gradient, **args):
    """TensorFlow's ``ResourceApply<kernel>``, or ``ResourceSparseApply<kernel>`` for ``IndexedSlices``."""
    if isinstance(gradient, tf.IndexedSlices):
        op = getattr(tf.raw_ops, f"ResourceSparseApply{kernel}")
        return op(grad=gradient.values, indices=gradient.indices, **args)
    return getattr(tf.raw_ops, f"ResourceApply{kernel}")(grad=gradient, **args)


def handle(variable):
    """The resource handle a raw kernel takes, for a ``tf.Variable`` or a ``keras.Variable``."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle


def once(optimizer, key, make):
    """``make()`` computed once per apply and shared by every variable (fewer graph ops)."""
    cache = optimizer.__dict__.get("_step_cache")
    if cache is None:
        return make()
    if key not in cache:
        cache[key] = make()
    return cache[key]


def hyper(optimizer, name, dtype):
    """The hyperparameter ``name`` in ``dtype``, once per apply."""
    return once(optimizer, (name, dtype), lambda: optimizer._get_hyper(name, dtype))


def lr(optimizer, learning_rate, dtype):
    """The learning rate in ``dtype``, once per apply."""
    return once(optimizer, ("learning_rate", dtype), lambda: tf.cast(learning_rate, dtype))


def powers(optimizer, *betas):
    """``beta**t`` in float64 for the step being made, for each hyperparameter name in ``betas``."""

    def make(beta):
        t = tf.cast(optimizer.iterations + 1, tf.float64)
        return tf.pow(optimizer._get_hyper(beta, tf.float64), t)

    return [once(optimizer, ("power", b), lambda b=b: make(b)) for b in betas]


def coefficients(optimizer, key, dtype, make):
    """The scalars ``make()`` returns, cast to ``dtype`` and stacked into one vector, once per apply.

    They are stacked in float64 and cast once (one cast node, not one per
    scalar: graph nodes cost about 1 us each on small problems); a scalar of a
    narrower float dtype goes to float64 and back exactly, so each value is the
    one casting it alone gives.
    """
    return once(optimizer, (key, dtype),
                lambda: tf.cast(tf.stack([tf.cast(c, tf.float64) for c in make()]), dtype))


# ------------------------------------------------------------ native kernels
@functools.cache
def _has_accelerator():
    return any(tf.config.list_logical_devices(kind) for kind in ("GPU", "TPU"))


def native(variable):
    """optimlab's native op library when it can update ``variable`` (on the CPU, outside XLA), else None."""
    if control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph()):
        return None
    device_type = tf.DeviceSpec.from_string(handle(variable).device or "").device_type
    if device_type not in ("CPU", None) or (device_type is None and _has_accelerator()):
        return None
    return kernels.load()


def native_apply(library, optimizer, gradients, variables, learning_rate, single=False, decay=False):
    """One native op for ``variables`` (one dtype): the single-tensor op, or the multi-tensor op.

    With ``decay`` the op also applies the optimizer's decoupled weight decay to
    every variable, in the same pass, with the plain path's arithmetic.
    """
    found = fast_path_of(type(optimizer))
    dtype = variables[0].dtype
    spec = found.spec(optimizer, learning_rate, dtype)
    if spec is DECLINED:
        return DECLINED
    slots, scalars, attrs = spec
    if decay:  # as ``Optimizer._decay_one``: x <- x - x * (wd * lr), in the variable's dtype
        rate = tf.constant(optimizer.weight_decay, dtype) * tf.cast(learning_rate, dtype)
        scalars = tf.concat([scalars, rate[None]], axis=0)
        attrs = {**attrs, "decay": True}
    handles = [handle(h) for v in variables for h in [v] + [optimizer.get_slot(v, s) for s in slots]]
    if single:
        op = getattr(library, f"optimlab_apply_{found.kernel}")
        return op(handles=handles, grad=gradients[0], coefficients=scalars, **attrs)
    op = getattr(library, f"optimlab_multi_apply_{found.kernel}")
    return op(handles=handles, grads=gradients, coefficients=scalars, **attrs)


def native_single(optimizer, gradient, variable, learning_rate):
    """The native single-tensor op; ``DECLINED`` where it cannot run (the default fast path of a native kernel)."""
    library = native(variable)
    if library is None:
        return DECLINED
    return native_apply(library, optimizer, [gradient], [variable], learning_rate, single=True)


def _joins_multi_tensor(optimizer, gradient, variable):
    """Dense float gradient, native kernel available, and the ``fused`` setting allows it.

    Under ``fused=None`` every size joins: the native kernels are bit-identical to
    the plain path, so ``MIN_SIZE`` (which keeps TensorFlow's kernels, equal only up
    to rounding, off small problems) is not needed here.
    """
    if getattr(optimizer, "fused", None) is False or isinstance(gradient, tf.IndexedSlices):
        return False
    return tf.as_dtype(variable.dtype) in _DTYPES and native(variable) is not None


def folds_weight_decay(optimizer):
    """Whether ``apply_many`` can take over the optimizer's decoupled weight decay (it has a native kernel)."""
    found = fast_path_of(type(optimizer))
    return found is not None and found.kernel is not None


def apply_many(optimizer, pairs, learning_rate, decay=False):
    """Apply dense ``(gradient, variable)`` pairs with one native multi-tensor op per dtype.

    With ``decay`` the ops also apply the optimizer's decoupled weight decay to
    the variables it covers (``_use_weight_decay``), so those variables take one
    op per dtype and the others another. Returns the pairs it did not apply
    (sparse gradients, other dtypes, variables the native kernels cannot update,
    optimizers or configurations without a native kernel, or ``fused=False``),
    for the per-variable path, which then decays them itself.
    """
    if not folds_weight_decay(optimizer):
        return list(pairs)
    groups, rest = {}, []
    for gradient, variable in pairs:
        if _joins_multi_tensor(optimizer, gradient, variable):
            decayed = decay and optimizer._use_weight_decay(variable)
            groups.setdefault((tf.as_dtype(variable.dtype), decayed), []).append((gradient, variable))
        else:
            rest.append((gradient, variable))
    for (_, decayed), group in groups.items():
        gradients = [tf.convert_to_tensor(g) for g, _ in group]
        variables = [v for _, v in group]
        if native_apply(kernels.load(), optimizer, gradients, variables, learning_rate, decay=decayed) is DECLINED:
            rest.extend(group)
    return rest

"""Fast paths: fused kernels (optimlab's own, or TensorFlow's ``ResourceApply*``) behind the update rules.

An optimizer step is memory-bound. Written as separate TensorFlow operations, an
Adam step reads and writes each moment several times; TensorFlow's fused kernels
(one multithreaded Eigen expression per variable, the kernels Keras 2 used) read
parameter, gradient and state once. Keras 3 uses none of them.

Each fast path here computes the same update as its optimizer's ``update_step``,
in the optimizer's own slots, up to floating-point rounding (tested in float64
against the plain path). A fast path returns ``DECLINED`` where its kernel cannot
express the optimizer's configuration, and the plain path runs instead.

Native kernels: Adam (and AdamW, and LazyAdam's dense rule), gradient descent,
SGD with momentum, the seed's Momentum, RMSprop, Adagrad, LARS,
ConditionalGradient (Frobenius) and Schedule-Free SGD and AdamW first try
optimlab's own single-pass CPU kernels (``optimlab.kernels``, compiled with g++
on first use), which read and write every buffer once, in parallel parts. They
compute each element with the plain path's operations in the same order and
precision, so their results are bit-identical to ``update_step`` in float32 and
float64, eagerly and inside ``tf.function`` (tested; the plain path keeps Grappler
from rewriting ``x / sqrt(y)``), except ConditionalGradient's, whose op also takes the
gradient's norm (summing in double, so equal up to rounding). They run for
variables on the CPU outside XLA; elsewhere, when the library cannot be built,
or with ``OPTIMLAB_NATIVE=0``, TensorFlow's kernels
(or, for RMSprop configurations TensorFlow has none for, the plain path) run.

Multi-tensor: outside tf.distribute, ``apply_many`` updates every dense
gradient's variable that the native kernels can take with ONE op per dtype
(``OptimlabMultiApply*``: one parallel pass over the concatenated elements), so
a step over a hundred variables pays one op launch instead of a hundred. The
rest (sparse gradients, other optimizers, XLA, MirroredStrategy) goes through
the per-variable path (``apply``), where the single-tensor ops run.

Weight decay: for optimizers with a multi-tensor kernel, the base class hands
decoupled weight decay (``weight_decay``) to ``apply_many``, which folds it into
the same pass (``x - x*(wd*lr)`` first, with the plain path's arithmetic);
variables excluded from decay take a second op, and the per-variable path
decays each variable just before its update.

TensorFlow's kernels also serve Ftrl (``ResourceApplyFtrlV2``) and
ProximalAdagrad (``ResourceApplyProximalAdagrad``). Sparse gradients: where an
optimizer's sparse rule is the lazy one (only the indexed rows of variable and
state change), TensorFlow's ``ResourceSparseApply*`` kernels run on the
deduplicated rows (Adagrad with epsilon outside the square root, Ftrl,
ProximalAdagrad), under the same ``fused`` setting and ``MIN_SIZE`` rule.

Switch: every optimizer takes ``fused=None`` (the default), ``True`` (always) or
``False`` (never). Under ``None`` the native multi-tensor op takes variables of
every size, since it is bit-identical to the plain path; the other kernels
(TensorFlow's, equal only up to rounding) run for variables with at least
``MIN_SIZE`` elements, so small problems such as the convergence lab keep the
readable path's exact arithmetic.
"""

import functools

import keras
import tensorflow as tf
from tensorflow.python.framework import ops
from tensorflow.python.ops import control_flow_util

from optimlab import kernels

MIN_SIZE = 4096
DECLINED = "declined"
_DTYPES = (tf.float32, tf.float64)
_FAST_PATHS = {}
_SPARSE_FAST_PATHS = set()
_NATIVE_KERNELS = {}


def fast_path(class_name, sparse=False):
    """Register ``fn(optimizer, gradient, variable, learning_rate)`` for an optimizer class.

    With ``sparse`` the function also takes deduplicated ``tf.IndexedSlices``
    gradients (for optimizers whose sparse rule is the lazy one TensorFlow's
    ``ResourceSparseApply*`` kernels implement).
    """

    def decorate(fn):
        _FAST_PATHS[class_name] = fn
        if sparse:
            _SPARSE_FAST_PATHS.add(class_name)
        return fn

    return decorate


def native_kernel(class_name, kernel):
    """Register ``spec(optimizer, learning_rate, dtype)`` for the native op ``kernel`` (e.g. ``"adam"``).

    ``spec`` returns the slot names (in the op's handle order), the coefficient
    vector and the op's attributes, or ``DECLINED`` for a configuration the op
    cannot express.
    """

    def decorate(fn):
        _NATIVE_KERNELS[class_name] = (kernel, fn)
        return fn

    return decorate


def has_fast_path(optimizer):
    return type(optimizer).__name__ in _FAST_PATHS and type(optimizer).__module__.startswith("optimlab.")


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
    the fast path was registered with ``sparse=True``.
    """
    name = type(optimizer).__name__
    if isinstance(gradient, tf.IndexedSlices) and name not in _SPARSE_FAST_PATHS:
        return False
    return _FAST_PATHS[name](optimizer, gradient, variable, learning_rate) is not DECLINED


def _dense_or_sparse(kernel, gradient, **args):
    """TensorFlow's ``ResourceApply<kernel>``, or ``ResourceSparseApply<kernel>`` for ``IndexedSlices``."""
    if isinstance(gradient, tf.IndexedSlices):
        op = getattr(tf.raw_ops, f"ResourceSparseApply{kernel}")
        return op(grad=gradient.values, indices=gradient.indices, **args)
    return getattr(tf.raw_ops, f"ResourceApply{kernel}")(grad=gradient, **args)


def _handle(variable):
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle


def _once(optimizer, key, make):
    """``make()`` computed once per apply and shared by every variable (fewer graph ops)."""
    cache = optimizer.__dict__.get("_step_cache")
    if cache is None:
        return make()
    if key not in cache:
        cache[key] = make()
    return cache[key]


def _hyper(optimizer, name, dtype):
    return _once(optimizer, (name, dtype), lambda: optimizer._get_hyper(name, dtype))


def _lr(optimizer, learning_rate, dtype):
    return _once(optimizer, ("learning_rate", dtype), lambda: tf.cast(learning_rate, dtype))


def _powers(optimizer, *betas):
    """``beta**t`` in float64 for the step being made."""

    def make(beta):
        t = tf.cast(optimizer.iterations + 1, tf.float64)
        return tf.pow(optimizer._get_hyper(beta, tf.float64), t)

    return [_once(optimizer, ("power", b), lambda b=b: make(b)) for b in betas]


@functools.cache
def _has_accelerator():
    return any(tf.config.list_logical_devices(kind) for kind in ("GPU", "TPU"))


def native(variable):
    """optimlab's native op library when it can update ``variable`` (on the CPU, outside XLA), else None."""
    if control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph()):
        return None
    device_type = tf.DeviceSpec.from_string(_handle(variable).device or "").device_type
    if device_type not in ("CPU", None) or (device_type is None and _has_accelerator()):
        return None
    return kernels.load()


def _coefficients(optimizer, key, dtype, make):
    """The scalars ``make()`` returns, cast to ``dtype`` and stacked into one vector, once per apply."""
    return _once(optimizer, (key, dtype), lambda: tf.stack([tf.cast(c, dtype) for c in make()]))


def _native_apply(library, opt, gradients, variables, learning_rate, single=False, decay=False):
    """One native op for ``variables`` (one dtype): the single-tensor op, or the multi-tensor op.

    With ``decay`` the op also applies the optimizer's decoupled weight decay to
    every variable, in the same pass, with the plain path's arithmetic.
    """
    kernel, spec = _NATIVE_KERNELS[type(opt).__name__]
    dtype = variables[0].dtype
    found = spec(opt, learning_rate, dtype)
    if found is DECLINED:
        return DECLINED
    slots, coefficients, attrs = found
    if decay:  # as ``Optimizer._decay_one``: x <- x - x * (wd * lr), in the variable's dtype
        rate = tf.constant(opt.weight_decay, dtype) * tf.cast(learning_rate, dtype)
        coefficients = tf.concat([coefficients, rate[None]], axis=0)
        attrs = {**attrs, "decay": True}
    handles = [_handle(h) for v in variables for h in [v] + [opt.get_slot(v, s) for s in slots]]
    if single:
        op = getattr(library, f"optimlab_apply_{kernel}")
        return op(handles=handles, grad=gradients[0], coefficients=coefficients, **attrs)
    op = getattr(library, f"optimlab_multi_apply_{kernel}")
    return op(handles=handles, grads=gradients, coefficients=coefficients, **attrs)


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
    return type(optimizer).__name__ in _NATIVE_KERNELS and has_fast_path(optimizer)


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
        if _native_apply(kernels.load(), optimizer, gradients, variables, learning_rate, decay=decayed) is DECLINED:
            rest.extend(group)
    return rest


@fast_path("GradientDescent")
def _gradient_descent(opt, gradient, variable, learning_rate):
    lr = _lr(opt, learning_rate, variable.dtype)
    return tf.raw_ops.ResourceApplyGradientDescent(var=variable.handle, alpha=lr, delta=gradient)


@fast_path("SGD")
def _sgd(opt, gradient, variable, learning_rate):
    dtype = variable.dtype
    lr = _lr(opt, learning_rate, dtype)
    if not opt._has_momentum:
        return tf.raw_ops.ResourceApplyGradientDescent(var=variable.handle, alpha=lr, delta=gradient)
    library = native(variable)
    if library is not None:
        return _native_apply(library, opt, [gradient], [variable], learning_rate, single=True)
    return tf.raw_ops.ResourceApplyKerasMomentum(
        var=variable.handle,
        accum=_handle(opt.get_slot(variable, "momentum")),
        lr=lr,
        grad=gradient,
        momentum=_hyper(opt, "momentum", dtype),
        use_nesterov=opt.nesterov,
    )


@native_kernel("GradientDescent", "gradient_descent")
def _gradient_descent_native(opt, learning_rate, dtype):
    return (), _coefficients(opt, "native-gd", dtype, lambda: [learning_rate]), {}


@native_kernel("SGD", "sgd_momentum")
def _sgd_native(opt, learning_rate, dtype):
    if not opt._has_momentum:
        return DECLINED  # SGD without momentum: the per-variable path's TensorFlow kernel

    def scalars():
        return learning_rate, opt._get_hyper("momentum", tf.float64)

    return ("momentum",), _coefficients(opt, "native-sgd", dtype, scalars), {"nesterov": opt.nesterov}


@fast_path("Momentum")  # TensorFlow's momentum kernels keep ``change / lr``, not the seed's ``change``
@fast_path("LazyAdam")  # TensorFlow's Adam kernel folds epsilon differently from LazyAdam's dense rule
def _native_only(opt, gradient, variable, learning_rate):
    """The native single-tensor op; declined where it cannot run (no TensorFlow kernel has these semantics)."""
    library = native(variable)
    if library is None:
        return DECLINED
    return _native_apply(library, opt, [gradient], [variable], learning_rate, single=True)


@native_kernel("Momentum", "sgd_momentum")
def _momentum_native(opt, learning_rate, dtype):
    def scalars():
        return learning_rate, opt._get_hyper("momentum", tf.float64)

    return ("change",), _coefficients(opt, "native-momentum", dtype, scalars), {"seed_form": True}


def _adam_paper_scalars(opt, learning_rate):
    """b1, 1 - b1, b2, 1 - b2, 1 - b1^t, 1 - b2^t (float64), lr and epsilon, as ``Adam.update_step``."""
    beta_1 = opt._get_hyper("beta_1", tf.float64)
    beta_2 = opt._get_hyper("beta_2", tf.float64)
    beta_1_power, beta_2_power = _powers(opt, "beta_1", "beta_2")
    epsilon = opt._get_hyper("epsilon", tf.float64)
    return (beta_1, 1.0 - beta_1, beta_2, 1.0 - beta_2, 1.0 - beta_1_power, 1.0 - beta_2_power, learning_rate, epsilon)


def _adam_keras_scalars(opt, learning_rate, dtype):
    """1 - b1, 1 - b2 (float64), the step size ``alpha`` and epsilon, as ``Adam._keras_form``."""
    beta_1 = opt._get_hyper("beta_1", tf.float64)
    beta_2 = opt._get_hyper("beta_2", tf.float64)
    t = tf.cast(opt.iterations + 1, dtype)
    lr = tf.cast(learning_rate, dtype)
    alpha = lr * tf.sqrt(1 - tf.pow(tf.cast(beta_2, dtype), t)) / (1 - tf.pow(tf.cast(beta_1, dtype), t))
    return (1.0 - beta_1, 1.0 - beta_2, alpha, opt._get_hyper("epsilon", tf.float64))


@fast_path("AdamW")
@fast_path("Adam")
def _adam(opt, gradient, variable, learning_rate):
    dtype = variable.dtype
    library = native(variable)
    if library is not None:
        return _native_apply(library, opt, [gradient], [variable], learning_rate, single=True)

    def coefficients():
        beta_1_power, beta_2_power = _powers(opt, "beta_1", "beta_2")
        epsilon = opt._get_hyper("epsilon", tf.float64)
        if not opt.epsilon_hat:
            # m_hat / (sqrt(v_hat) + eps) == lr_t * m / (sqrt(v) + eps * sqrt(1 - beta_2^t))
            epsilon = epsilon * tf.sqrt(1.0 - beta_2_power)
        return dict(
            beta1_power=tf.cast(beta_1_power, dtype),
            beta2_power=tf.cast(beta_2_power, dtype),
            lr=_lr(opt, learning_rate, dtype),
            beta1=_hyper(opt, "beta_1", dtype),
            beta2=_hyper(opt, "beta_2", dtype),
            epsilon=tf.cast(epsilon, dtype),
        )

    args = dict(
        var=variable.handle,
        m=_handle(opt.get_slot(variable, "m")),
        v=_handle(opt.get_slot(variable, "v")),
        grad=gradient,
        **_once(opt, ("adam", dtype), coefficients),
    )
    if opt.amsgrad:
        return tf.raw_ops.ResourceApplyAdamWithAmsgrad(vhat=_handle(opt.get_slot(variable, "v_max")), **args)
    return tf.raw_ops.ResourceApplyAdam(**args)


@native_kernel("AdamW", "adam")
@native_kernel("Adam", "adam")
def _adam_native(opt, learning_rate, dtype):
    slots = ("m", "v", "v_max") if opt.amsgrad else ("m", "v")
    if opt.epsilon_hat:
        coefficients = _coefficients(opt, "native-adam", dtype, lambda: _adam_keras_scalars(opt, learning_rate, dtype))
    else:
        coefficients = _coefficients(opt, "native-adam", dtype, lambda: _adam_paper_scalars(opt, learning_rate))
    return slots, coefficients, {"amsgrad": opt.amsgrad, "form": "keras" if opt.epsilon_hat else "paper"}


@native_kernel("LazyAdam", "adam")
def _lazy_adam_native(opt, learning_rate, dtype):
    # LazyAdam._coefficients casts each scalar to the variable's dtype itself.
    coefficients = _once(opt, ("native-lazy-adam", dtype), lambda: tf.stack(opt._coefficients(dtype, learning_rate)))
    return ("m", "v"), coefficients, {"form": "lazy"}


@fast_path("Adamax")
def _adamax(opt, gradient, variable, learning_rate):
    dtype = variable.dtype
    beta_1_power = _once(opt, ("beta_1_power", dtype), lambda: tf.cast(_powers(opt, "beta_1")[0], dtype))
    return tf.raw_ops.ResourceApplyAdaMax(
        var=variable.handle,
        m=_handle(opt.get_slot(variable, "m")),
        v=_handle(opt.get_slot(variable, "u")),
        beta1_power=beta_1_power,
        lr=_lr(opt, learning_rate, dtype),
        beta1=_hyper(opt, "beta_1", dtype),
        beta2=_hyper(opt, "beta_2", dtype),
        epsilon=_hyper(opt, "epsilon", dtype),
        grad=gradient,
    )


@fast_path("Adadelta")
def _adadelta(opt, gradient, variable, learning_rate):
    dtype = variable.dtype
    return tf.raw_ops.ResourceApplyAdadelta(
        var=variable.handle,
        accum=_handle(opt.get_slot(variable, "accumulated_grad")),
        accum_update=_handle(opt.get_slot(variable, "accumulated_delta_var")),
        lr=_lr(opt, learning_rate, dtype),
        rho=_hyper(opt, "rho", dtype),
        epsilon=_hyper(opt, "epsilon", dtype),
        grad=gradient,
    )


@fast_path("RMSprop")
def _rmsprop(opt, gradient, variable, learning_rate):
    dtype = variable.dtype
    library = native(variable)
    if library is not None:
        return _native_apply(library, opt, [gradient], [variable], learning_rate, single=True)
    if not (opt.epsilon_inside_sqrt and opt._has_momentum):
        return DECLINED  # TensorFlow's kernels need a momentum slot and epsilon inside the square root
    args = dict(
        var=variable.handle,
        ms=_handle(opt.get_slot(variable, "velocity")),
        mom=_handle(opt.get_slot(variable, "momentum")),
        lr=_lr(opt, learning_rate, dtype),
        rho=_hyper(opt, "rho", dtype),
        momentum=_hyper(opt, "momentum", dtype),
        epsilon=_hyper(opt, "epsilon", dtype),
        grad=gradient,
    )
    if opt.centered:
        return tf.raw_ops.ResourceApplyCenteredRMSProp(mg=_handle(opt.get_slot(variable, "average_gradient")), **args)
    return tf.raw_ops.ResourceApplyRMSProp(**args)


@native_kernel("RMSprop", "rmsprop")
def _rmsprop_native(opt, learning_rate, dtype):
    def scalars():
        rho = opt._get_hyper("rho", tf.float64)
        head = (rho, 1.0 - rho, learning_rate, opt._get_hyper("epsilon", tf.float64))
        return head + (opt._get_hyper("momentum", tf.float64),) if opt._has_momentum else head

    slots = ("velocity",) + ("average_gradient",) * opt.centered + ("momentum",) * opt._has_momentum
    attrs = {"centered": opt.centered, "momentum": opt._has_momentum, "epsilon_inside_sqrt": opt.epsilon_inside_sqrt}
    return slots, _coefficients(opt, "native-rmsprop", dtype, scalars), attrs


@fast_path("Adagrad", sparse=True)
def _adagrad(opt, gradient, variable, learning_rate):
    library = native(variable)
    if library is not None and not isinstance(gradient, tf.IndexedSlices):
        return _native_apply(library, opt, [gradient], [variable], learning_rate, single=True)
    if opt.epsilon_inside_sqrt:
        return DECLINED  # TensorFlow's AdagradV2 kernel adds epsilon after the square root
    dtype = variable.dtype
    return _dense_or_sparse(
        "AdagradV2",
        gradient,
        var=variable.handle,
        accum=_handle(opt.get_slot(variable, "accumulator")),
        lr=_lr(opt, learning_rate, dtype),
        epsilon=_hyper(opt, "epsilon", dtype),
    )


@native_kernel("Adagrad", "adagrad")
def _adagrad_native(opt, learning_rate, dtype):
    def scalars():
        return learning_rate, opt._get_hyper("epsilon", tf.float64)

    coefficients = _coefficients(opt, "native-adagrad", dtype, scalars)
    return ("accumulator",), coefficients, {"epsilon_inside_sqrt": opt.epsilon_inside_sqrt}


@fast_path("Ftrl", sparse=True)
def _ftrl(opt, gradient, variable, learning_rate):
    dtype = variable.dtype
    lr = _lr(opt, learning_rate, dtype)
    lr_power, l1, l2, l2_shrinkage, beta = _once(opt, ("ftrl", dtype), lambda: opt._hypers_for(dtype))
    if isinstance(gradient, tf.IndexedSlices) and not opt.lazy_sparse:
        gradient = tf.convert_to_tensor(gradient)  # Keras's rule: every row takes the dense step
    return _dense_or_sparse(
        "FtrlV2",
        gradient,
        var=variable.handle,
        accum=_handle(opt.get_slot(variable, "accumulator")),
        linear=_handle(opt.get_slot(variable, "linear")),
        lr=lr,
        l1=l1,
        l2=l2 + beta / (2.0 * lr),  # as Keras 2 passed beta to the kernel
        l2_shrinkage=l2_shrinkage,
        lr_power=lr_power,
    )


@fast_path("ProximalAdagrad", sparse=True)
def _proximal_adagrad(opt, gradient, variable, learning_rate):
    lr, l1, l2 = _once(opt, ("proximal_adagrad", variable.dtype), lambda: opt._hypers_for(variable.dtype, learning_rate))
    accumulator = _handle(opt.get_slot(variable, "accumulator"))
    return _dense_or_sparse("ProximalAdagrad", gradient, var=variable.handle, accum=accumulator, lr=lr, l1=l1, l2=l2)


@fast_path("ConditionalGradient")
def _conditional_gradient(opt, gradient, variable, learning_rate):
    library = native(variable)
    if library is None or opt.ord != "fro":
        return DECLINED  # the nuclear-norm step needs an SVD
    dtype = variable.dtype
    lr = tf.cast(learning_rate, dtype)
    # The op takes ||g|| in a first pass of its own (summed in double, faster
    # than a separate l2_loss), so the result equals the plain path's up to rounding.
    coefficients = tf.stack([lr, (1 - lr) * opt._get_hyper("lambda_", dtype), opt._get_hyper("epsilon", dtype)])
    return library.optimlab_apply_conditional_gradient(
        handles=[variable.handle], grad=gradient, coefficients=coefficients, norm=True
    )


@fast_path("LARS")
def _lars(opt, gradient, variable, learning_rate):
    library = native(variable)
    if library is None:
        return DECLINED
    dtype = variable.dtype
    lr = tf.cast(learning_rate, dtype)
    adapted = opt.is_adapted(variable)
    if adapted:
        rate, weight_decay = opt._adapted_rate(variable, gradient, lr)
        scalars = [rate, weight_decay, opt._get_hyper("momentum", dtype)]
    else:
        scalars = [lr, tf.zeros([], dtype), opt._get_hyper("momentum", dtype)]
    return library.optimlab_apply_lars(
        handles=[variable.handle, _handle(opt.get_slot(variable, "momentum"))],
        grad=gradient,
        coefficients=tf.stack(scalars),
        nesterov=opt.nesterov,
        adapted=adapted,
    )


@fast_path("ScheduleFreeSGD")
@fast_path("ScheduleFreeAdamW")
def _schedule_free(opt, gradient, variable, learning_rate):
    library = native(variable)
    if library is None:
        return DECLINED
    adam = type(opt).__name__ == "ScheduleFreeAdamW"
    scalars = list(opt._averaging_scalars(variable, learning_rate))
    slots = ("z", "x", "v") if adam else ("z", "x")
    if adam:
        scalars += opt._moment_scalars(variable.dtype)
    return library.optimlab_apply_schedule_free(
        handles=[variable.handle] + [_handle(opt.get_slot(variable, s)) for s in slots],
        grad=gradient,
        coefficients=tf.stack(scalars),
        adam=adam,
    )

// Single-pass CPU kernels for optimlab's fast paths (Adam, AdamW and LazyAdam's dense
// rule, gradient descent, SGD with momentum, the Core APIs guide's Momentum, RMSprop, Adagrad, LARS, ConditionalGradient's
// Frobenius step, Schedule-Free SGD and AdamW), with decoupled weight decay folded in when asked.
//
// Each op updates resource variables and their slot variables in one multithreaded
// pass over memory: one variable (``OptimlabApply*``) or many (``OptimlabMultiApply*``,
// one op call for all the variables of a step). Every element is computed with the same operations, in the same
// order and precision, as the optimizer's plain ``update_step`` in optimlab (build
// with -ffp-contract=off so no multiply-add is fused), so results are bit-identical.
//
// Inputs of every op: ``handles`` (the variable first, then its slots), ``grad``
// (multi ops: ``grads``, one per variable), and ``coefficients``: a vector of
// scalars already cast to the variables' dtype, in the order documented at each op.
//
// With the attribute ``decay`` every op first applies decoupled weight decay to
// the variable, ``x = x - x*d``, with ``d`` (= weight_decay * lr) appended as the
// last coefficient: the update then reads the decayed value, in the same pass.

#define EIGEN_USE_THREADS

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/kernels/training_op_helpers.h"
#include "tensorflow/core/platform/blocking_counter.h"

namespace tensorflow {
namespace {

using CPUDevice = Eigen::ThreadPoolDevice;

// Pointers to one variable's and its slots' buffers, its gradient and the scalars.
// ``x - x*d``: the plain path's decoupled weight decay, applied when kDecay.
template <typename T, bool kDecay>
inline T Decayed(T x, T d) {
  return kDecay ? x - x * d : x;
}

template <typename T>
struct Step {
  std::vector<T*> state;
  const T* grad;
  const T* c;
};

constexpr int64_t kUnit = 16;                // elements per 64-byte line (float32)
constexpr int64_t kInlineCost = 15 * 32768;  // below this (cost x elements) one thread does it all

// Calls ``shard(part, begin, end)`` over [0, total) in contiguous parts, one per worker
// thread, split at 64-byte boundaries; the calling thread takes the first part
// (one thread hand-off fewer than Eigen's blocks, which measured 5% faster on
// small problems). Small ranges run inline.
template <typename Shard>
void RunParts(OpKernelContext* ctx, int64_t total, int64_t cost_per_element, const Shard& shard) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  const int parts = total * cost_per_element < kInlineCost ? 1 : std::max(1, workers->NumThreads());
  const int64_t units = (total + kUnit - 1) / kUnit;
  auto part = [&](int p) {
    shard(p, std::min(total, units * p / parts * kUnit), std::min(total, units * (p + 1) / parts * kUnit));
  };
  BlockingCounter pending(parts - 1);
  for (int p = 1; p < parts; ++p) {
    workers->Schedule([&part, &pending, p] {
      part(p);
      pending.DecrementCount();
    });
  }
  part(0);
  pending.Wait();
}

// ``sum(x*x)`` over ``n`` elements, accumulated in double in parallel parts.
template <typename T>
double SumOfSquares(OpKernelContext* ctx, const T* x, int64_t n) {
  const int max_parts = std::max(1, ctx->device()->tensorflow_cpu_worker_threads()->workers->NumThreads());
  std::vector<double> partial(max_parts, 0.0);
  RunParts(ctx, n, 4, [x, &partial](int p, int64_t begin, int64_t end) {
    double lanes[kUnit] = {};
    int64_t i = begin;
    for (; i + kUnit <= end; i += kUnit) {
      for (int k = 0; k < kUnit; ++k) lanes[k] += static_cast<double>(x[i + k]) * static_cast<double>(x[i + k]);
    }
    double sum = 0.0;
    for (; i < end; ++i) sum += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    for (int k = 0; k < kUnit; ++k) sum += lanes[k];
    partial[p] = sum;
  });
  double total = 0.0;
  for (double value : partial) total += value;
  return total;
}

// Inputs: ``num_vars * per_var`` handles (each variable followed by its slots),
// ``num_vars`` gradients, then the coefficients. Locks every variable in address
// order, prepares each buffer for writing and calls ``update(step, begin, end)``
// over the concatenated elements of all variables in parallel parts; a part
// that spans several variables is split at their boundaries. ``coefficient_values``,
// when given, replaces the coefficient input's values (same count) for the update.
template <typename T, typename Update>
void RunUpdate(OpKernelContext* ctx, int num_vars, int per_var, int64_t cost_per_element,
               int num_coefficients, Update update, const T* coefficient_values = nullptr) {
  const int num_handles = num_vars * per_var;
  std::vector<int> ids(num_handles);
  for (int i = 0; i < num_handles; ++i) ids[i] = i;
  auto locks = MaybeLockVariableInputMutexesInOrder<CPUDevice, T>(ctx, true, false, ids);
  std::vector<Tensor> tensors(num_handles);
  for (int i = 0; i < num_handles; ++i) {
    OP_REQUIRES_OK(ctx, GetInputTensorFromVariable<CPUDevice, T>(ctx, i, true, false, &tensors[i]));
    OP_REQUIRES(ctx, tensors[i].IsInitialized(),
                errors::FailedPrecondition("optimlab: variable input ", i, " is not initialized"));
  }
  const Tensor& coefficients = ctx->input(num_handles + num_vars);
  OP_REQUIRES(ctx, coefficients.dims() == 1 && coefficients.NumElements() == num_coefficients,
              errors::InvalidArgument("optimlab: coefficients must be a vector of ", num_coefficients,
                                      " scalars, got shape ", coefficients.shape().DebugString()));
  std::vector<Step<T>> steps(num_vars);
  std::vector<int64_t> starts(num_vars + 1, 0);
  for (int j = 0; j < num_vars; ++j) {
    const Tensor& grad = ctx->input(num_handles + j);
    for (int i = j * per_var; i < (j + 1) * per_var; ++i) {
      OP_REQUIRES(ctx, tensors[i].shape().IsSameSize(grad.shape()),
                  errors::InvalidArgument("optimlab: variable input ", i, " has shape ",
                                          tensors[i].shape().DebugString(), " but its grad has shape ",
                                          grad.shape().DebugString()));
      steps[j].state.push_back(tensors[i].flat<T>().data());
    }
    steps[j].grad = grad.flat<T>().data();
    steps[j].c = coefficient_values ? coefficient_values : coefficients.flat<T>().data();
    starts[j + 1] = starts[j] + grad.NumElements();
  }
  auto shard = [&steps, &starts, &update](int, int64_t begin, int64_t end) {
    int j = std::upper_bound(starts.begin(), starts.end(), begin) - starts.begin() - 1;
    for (; begin < end; ++j) {
      const int64_t stop = std::min(end, starts[j + 1]);
      update(steps[j], begin - starts[j], stop - starts[j]);
      begin = stop;
    }
  };
  RunParts(ctx, starts[num_vars], cost_per_element, shard);
}

// Reads the number of variables and handles per variable: ``n`` handles for one
// variable (single-tensor ops), or ``M`` handles for ``N`` variables (multi ops);
// fails unless every variable comes with ``expected`` handles (itself, then its slots).
void GetLayout(OpKernelConstruction* ctx, const char* name, int expected, int* num_vars, int* per_var) {
  int handles = 0;
  *num_vars = 1;
  if (ctx->HasAttr("N")) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("N", num_vars));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("M", &handles));
  } else {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("n", &handles));
  }
  *per_var = expected;
  OP_REQUIRES(ctx, handles == expected * *num_vars,
              errors::InvalidArgument("optimlab ", name, ": expected ", expected, " handles per variable, got ",
                                      handles, " for ", *num_vars, " variable(s)"));
}

// Calls ``f`` with std::true_type or std::false_type for each runtime flag, in
// order, so one call site instantiates a kernel for every combination of its
// boolean template arguments (read them as ``decltype(flag)::value``).
template <typename F>
void WithFlags(F f) {
  f();
}
template <typename F, typename... Flags>
void WithFlags(F f, bool flag, Flags... rest) {
  if (flag) {
    WithFlags([&](auto... more) { f(std::true_type(), more...); }, rest...);
  } else {
    WithFlags([&](auto... more) { f(std::false_type(), more...); }, rest...);
  }
}

// ---------------------------------------------------------------- Adam
// handles: var, m, v[, v_max]; attribute ``form``:
// "paper" (optimlab's Adam) coefficients: b1, c1, b2, c2, k1, k2, lr, eps[, d]
//   m = b1*m + c1*g; v = b2*v + c2*(g*g); [v_max = max(v_max, v)]
//   var = var - lr * ((m / k1) / (sqrt(v_used / k2) + eps))
// "keras" (Adam with epsilon_hat) coefficients: c1, c2, alpha, eps[, d]
//   m = m + (g - m)*c1; v = v + (g*g - v)*c2; [v_max = max(v_max, v)]
//   var = var - (m*alpha) / (sqrt(v_used) + eps)
// "lazy" (LazyAdam's dense rule) coefficients: b1, c1, b2, c2, lr_t, eps[, d]
//   m = b1*m + c1*g; v = b2*v + c2*(g*g); [v_max = max(v_max, v)]
//   var = var - (lr_t*m) / (sqrt(v_used) + eps)
enum AdamForm { kPaper = 0, kKerasForm = 1, kLazy = 2 };

template <typename T, bool kAmsgrad, int kForm, bool kDecay>
void AdamShard(const Step<T>& s, int64_t begin, int64_t end) {
  T* __restrict var = s.state[0];
  T* __restrict m = s.state[1];
  T* __restrict v = s.state[2];
  T* __restrict v_max = kAmsgrad ? s.state[3] : nullptr;
  const T* __restrict g = s.grad;
  if (kForm == kKerasForm) {
    const T c1 = s.c[0], c2 = s.c[1], alpha = s.c[2], eps = s.c[3], d = kDecay ? s.c[4] : T(0);
    for (int64_t i = begin; i < end; ++i) {
      const T gi = g[i];
      const T mi = m[i] + (gi - m[i]) * c1;
      T vi = v[i] + (gi * gi - v[i]) * c2;
      m[i] = mi;
      v[i] = vi;
      if (kAmsgrad) {
        vi = v_max[i] < vi ? vi : v_max[i];
        v_max[i] = vi;
      }
      var[i] = Decayed<T, kDecay>(var[i], d) - (mi * alpha) / (std::sqrt(vi) + eps);
    }
  } else if (kForm == kLazy) {
    const T b1 = s.c[0], c1 = s.c[1], b2 = s.c[2], c2 = s.c[3];
    const T lr_t = s.c[4], eps = s.c[5], d = kDecay ? s.c[6] : T(0);
    for (int64_t i = begin; i < end; ++i) {
      const T gi = g[i];
      const T mi = b1 * m[i] + c1 * gi;
      T vi = b2 * v[i] + c2 * (gi * gi);
      m[i] = mi;
      v[i] = vi;
      if (kAmsgrad) {
        vi = v_max[i] < vi ? vi : v_max[i];
        v_max[i] = vi;
      }
      var[i] = Decayed<T, kDecay>(var[i], d) - (lr_t * mi) / (std::sqrt(vi) + eps);
    }
  } else {
    const T b1 = s.c[0], c1 = s.c[1], b2 = s.c[2], c2 = s.c[3];
    const T k1 = s.c[4], k2 = s.c[5], lr = s.c[6], eps = s.c[7], d = kDecay ? s.c[8] : T(0);
    for (int64_t i = begin; i < end; ++i) {
      const T gi = g[i];
      const T mi = b1 * m[i] + c1 * gi;
      T vi = b2 * v[i] + c2 * (gi * gi);
      m[i] = mi;
      v[i] = vi;
      if (kAmsgrad) {
        vi = v_max[i] < vi ? vi : v_max[i];
        v_max[i] = vi;
      }
      var[i] = Decayed<T, kDecay>(var[i], d) - lr * ((mi / k1) / (std::sqrt(vi / k2) + eps));
    }
  }
}

template <typename T>
class AdamOp : public OpKernel {
 public:
  explicit AdamOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    std::string form;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("amsgrad", &amsgrad_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("form", &form));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("decay", &decay_));
    form_ = form == "keras" ? kKerasForm : form == "lazy" ? kLazy : kPaper;
    GetLayout(ctx, "Adam", amsgrad_ ? 4 : 3, &vars_, &per_var_);
  }
  void Compute(OpKernelContext* ctx) override {
    const int n = (form_ == kKerasForm ? 4 : form_ == kLazy ? 6 : 8) + (decay_ ? 1 : 0);
    const int64_t cost = amsgrad_ ? 40 : 30;
    WithFlags(
        [&](auto amsgrad, auto decay) {
          constexpr bool kAmsgrad = decltype(amsgrad)::value, kDecay = decltype(decay)::value;
          if (form_ == kKerasForm) RunUpdate<T>(ctx, vars_, per_var_, cost, n, AdamShard<T, kAmsgrad, kKerasForm, kDecay>);
          if (form_ == kLazy) RunUpdate<T>(ctx, vars_, per_var_, cost, n, AdamShard<T, kAmsgrad, kLazy, kDecay>);
          if (form_ == kPaper) RunUpdate<T>(ctx, vars_, per_var_, cost, n, AdamShard<T, kAmsgrad, kPaper, kDecay>);
        },
        amsgrad_, decay_);
  }

 private:
  bool amsgrad_, decay_;
  int form_, vars_, per_var_;
};

// ---------------------------------------------------------------- Gradient descent
// handles: var. coefficients: lr[, d]
//   var = var - g*lr   (GradientDescent's lr*g and SGD's g*lr round alike)
template <typename T, bool kDecay>
void GradientDescentShard(const Step<T>& s, int64_t begin, int64_t end) {
  T* __restrict var = s.state[0];
  const T* __restrict g = s.grad;
  const T lr = s.c[0], d = kDecay ? s.c[1] : T(0);
  for (int64_t i = begin; i < end; ++i) {
    var[i] = Decayed<T, kDecay>(var[i], d) - g[i] * lr;
  }
}

template <typename T>
class GradientDescentOp : public OpKernel {
 public:
  explicit GradientDescentOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("decay", &decay_));
    GetLayout(ctx, "GradientDescent", 1, &vars_, &per_var_);
  }
  void Compute(OpKernelContext* ctx) override {
    WithFlags(
        [&](auto decay) {
          constexpr bool kDecay = decltype(decay)::value;
          RunUpdate<T>(ctx, vars_, per_var_, 10, kDecay ? 2 : 1, GradientDescentShard<T, kDecay>);
        },
        decay_);
  }

 private:
  bool decay_;
  int vars_, per_var_;
};

// ---------------------------------------------------------------- SGD
// handles: var, u. coefficients: lr, momentum[, d]
// Keras form: u = (-g)*lr + u*momentum; var = var + u
//   (nesterov: var = var + ((-g)*lr + u*momentum))
// change form (Momentum as TensorFlow's guide "Optimizers with Core APIs" writes it; u holds the last change):
//   u = lr*g + momentum*u; var = var - u
template <typename T, bool kNesterov, bool kChange, bool kDecay>
void SgdShard(const Step<T>& s, int64_t begin, int64_t end) {
  T* __restrict var = s.state[0];
  T* __restrict u = s.state[1];
  const T* __restrict g = s.grad;
  const T lr = s.c[0], momentum = s.c[1], d = kDecay ? s.c[2] : T(0);
  for (int64_t i = begin; i < end; ++i) {
    if (kChange) {
      const T ui = lr * g[i] + momentum * u[i];
      u[i] = ui;
      var[i] = Decayed<T, kDecay>(var[i], d) - ui;
    } else {
      const T step = -g[i] * lr;
      const T ui = step + u[i] * momentum;
      u[i] = ui;
      var[i] = Decayed<T, kDecay>(var[i], d) + (kNesterov ? step + ui * momentum : ui);
    }
  }
}

template <typename T>
class SgdOp : public OpKernel {
 public:
  explicit SgdOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("nesterov", &nesterov_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("change_form", &change_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("decay", &decay_));
    OP_REQUIRES(ctx, !(nesterov_ && change_),
                errors::InvalidArgument("optimlab SGD: the change form has no Nesterov variant"));
    GetLayout(ctx, "SGD", 2, &vars_, &per_var_);
  }
  void Compute(OpKernelContext* ctx) override {
    WithFlags(
        [&](auto nesterov, auto change, auto decay) {
          constexpr bool kDecay = decltype(decay)::value;
          RunUpdate<T>(ctx, vars_, per_var_, 15, kDecay ? 3 : 2,
                       SgdShard<T, decltype(nesterov)::value, decltype(change)::value, kDecay>);
        },
        nesterov_, change_, decay_);
  }

 private:
  bool nesterov_, change_, decay_;
  int vars_, per_var_;
};

// ---------------------------------------------------------------- RMSprop
// handles: var, v[, mg if centered][, u if momentum]
// coefficients: rho, c (= 1 - rho), lr, eps[, momentum][, d]
//   v = rho*v + c*(g*g); [mg = rho*mg + c*g; ms = v - mg*mg]
//   step = (lr*g) / sqrt(ms + eps)   (eps outside: sqrt(ms) + eps)
//   momentum: u = momentum*u + step; var = var - u.   else var = var - step
template <typename T, bool kCentered, bool kMomentum, bool kInside, bool kDecay>
void RmspropShard(const Step<T>& s, int64_t begin, int64_t end) {
  T* __restrict var = s.state[0];
  T* __restrict v = s.state[1];
  T* __restrict mg = kCentered ? s.state[2] : nullptr;
  T* __restrict u = kMomentum ? s.state[kCentered ? 3 : 2] : nullptr;
  const T* __restrict g = s.grad;
  const T rho = s.c[0], c = s.c[1], lr = s.c[2], eps = s.c[3];
  const T momentum = kMomentum ? s.c[4] : T(0);
  const T d = kDecay ? s.c[kMomentum ? 5 : 4] : T(0);
  for (int64_t i = begin; i < end; ++i) {
    const T gi = g[i];
    const T vi = rho * v[i] + c * (gi * gi);
    v[i] = vi;
    T ms = vi;
    if (kCentered) {
      const T mgi = rho * mg[i] + c * gi;
      mg[i] = mgi;
      ms = vi - mgi * mgi;
    }
    const T denominator = kInside ? std::sqrt(ms + eps) : std::sqrt(ms) + eps;
    const T step = (lr * gi) / denominator;
    if (kMomentum) {
      const T ui = momentum * u[i] + step;
      u[i] = ui;
      var[i] = Decayed<T, kDecay>(var[i], d) - ui;
    } else {
      var[i] = Decayed<T, kDecay>(var[i], d) - step;
    }
  }
}

template <typename T>
class RmspropOp : public OpKernel {
 public:
  explicit RmspropOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("centered", &centered_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("momentum", &momentum_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon_inside_sqrt", &inside_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("decay", &decay_));
    GetLayout(ctx, "RMSprop", 2 + (centered_ ? 1 : 0) + (momentum_ ? 1 : 0), &vars_, &per_var_);
  }
  void Compute(OpKernelContext* ctx) override {
    const int n = (momentum_ ? 5 : 4) + (decay_ ? 1 : 0);
    const int64_t cost = 30 + (centered_ ? 10 : 0) + (momentum_ ? 10 : 0);
    WithFlags(
        [&](auto centered, auto momentum, auto inside, auto decay) {
          RunUpdate<T>(ctx, vars_, per_var_, cost, n,
                       RmspropShard<T, decltype(centered)::value, decltype(momentum)::value, decltype(inside)::value,
                                    decltype(decay)::value>);
        },
        centered_, momentum_, inside_, decay_);
  }

 private:
  bool centered_, momentum_, inside_, decay_;
  int vars_, per_var_;
};

// ---------------------------------------------------------------- Adagrad
// handles: var, a. coefficients: lr, eps[, d]
//   a = a + g*g; var = var - (lr*g) / sqrt(a + eps)   (eps outside: sqrt(a) + eps)
template <typename T, bool kInside, bool kDecay>
void AdagradShard(const Step<T>& s, int64_t begin, int64_t end) {
  T* __restrict var = s.state[0];
  T* __restrict a = s.state[1];
  const T* __restrict g = s.grad;
  const T lr = s.c[0], eps = s.c[1], d = kDecay ? s.c[2] : T(0);
  for (int64_t i = begin; i < end; ++i) {
    const T gi = g[i];
    const T ai = a[i] + gi * gi;
    a[i] = ai;
    const T denominator = kInside ? std::sqrt(ai + eps) : std::sqrt(ai) + eps;
    var[i] = Decayed<T, kDecay>(var[i], d) - (lr * gi) / denominator;
  }
}

template <typename T>
class AdagradOp : public OpKernel {
 public:
  explicit AdagradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon_inside_sqrt", &inside_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("decay", &decay_));
    GetLayout(ctx, "Adagrad", 2, &vars_, &per_var_);
  }
  void Compute(OpKernelContext* ctx) override {
    WithFlags(
        [&](auto inside, auto decay) {
          constexpr bool kDecay = decltype(decay)::value;
          RunUpdate<T>(ctx, vars_, per_var_, 25, kDecay ? 3 : 2, AdagradShard<T, decltype(inside)::value, kDecay>);
        },
        inside_, decay_);
  }

 private:
  bool inside_, decay_;
  int vars_, per_var_;
};

// ---------------------------------------------------------------- LARS
// handles: var, v. coefficients: c (= lr * trust ratio, or lr), wd, momentum
//   step = c*(g + wd*var) (adapted) or c*g; v = momentum*v + step
//   var = var - v   (nesterov: var = var - (momentum*v + step))
template <typename T, bool kNesterov, bool kAdapted>
void LarsShard(const Step<T>& s, int64_t begin, int64_t end) {
  T* __restrict var = s.state[0];
  T* __restrict v = s.state[1];
  const T* __restrict g = s.grad;
  const T c = s.c[0], wd = s.c[1], momentum = s.c[2];
  for (int64_t i = begin; i < end; ++i) {
    const T step = kAdapted ? c * (g[i] + wd * var[i]) : c * g[i];
    const T vi = momentum * v[i] + step;
    v[i] = vi;
    var[i] = var[i] - (kNesterov ? momentum * vi + step : vi);
  }
}

template <typename T>
class LarsOp : public OpKernel {
 public:
  explicit LarsOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("nesterov", &nesterov_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("adapted", &adapted_));
    GetLayout(ctx, "LARS", 2, &vars_, &per_var_);
  }
  void Compute(OpKernelContext* ctx) override {
    WithFlags(
        [&](auto nesterov, auto adapted) {
          RunUpdate<T>(ctx, vars_, per_var_, 15, 3, LarsShard<T, decltype(nesterov)::value, decltype(adapted)::value>);
        },
        nesterov_, adapted_);
  }

 private:
  bool nesterov_, adapted_;
  int vars_, per_var_;
};

// ---------------------------------------------------------------- ConditionalGradient
// handles: var. coefficients: lr, c (= (1 - lr) * lambda), d (= ||g|| + epsilon)
//   var = lr*var - c*(g/d)
// With the attribute ``norm`` the third coefficient is epsilon and the op takes
// ||g|| itself (a first parallel pass, summing in double): d = ||g|| + epsilon.
template <typename T>
void ConditionalGradientShard(const Step<T>& s, int64_t begin, int64_t end) {
  T* __restrict var = s.state[0];
  const T* __restrict g = s.grad;
  const T lr = s.c[0], c = s.c[1], d = s.c[2];
  for (int64_t i = begin; i < end; ++i) {
    var[i] = lr * var[i] - c * (g[i] / d);
  }
}

template <typename T>
class ConditionalGradientOp : public OpKernel {
 public:
  explicit ConditionalGradientOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("norm", &norm_));
    GetLayout(ctx, "ConditionalGradient", 1, &vars_, &per_var_);
  }
  void Compute(OpKernelContext* ctx) override {
    if (!norm_) {
      RunUpdate<T>(ctx, vars_, per_var_, 10, 3, ConditionalGradientShard<T>);
      return;
    }
    const Tensor& grad = ctx->input(1);
    const Tensor& coefficients = ctx->input(2);
    OP_REQUIRES(ctx, coefficients.NumElements() == 3,
                errors::InvalidArgument("optimlab ConditionalGradient: coefficients must be lr, c, epsilon"));
    const auto c = coefficients.flat<T>();
    const T norm = static_cast<T>(std::sqrt(SumOfSquares<T>(ctx, grad.flat<T>().data(), grad.NumElements())));
    const T values[3] = {c(0), c(1), norm + c(2)};
    RunUpdate<T>(ctx, vars_, per_var_, 10, 3, ConditionalGradientShard<T>, values);
  }

 private:
  bool norm_;
  int vars_, per_var_;
};

// ---------------------------------------------------------------- Schedule-Free (SGD and AdamW)
// handles: var, z, x[, v if adam]. coefficients: first, beta, c, lr, wd[, b2, c2, k2, eps if adam]
//   first step (first != 0): z = x = var
//   y = (1 - beta)*z + beta*x;  d = g   (adam: v = b2*v + c2*(g*g); d = g / (sqrt(v / k2) + eps))
//   z = z - lr*(d + wd*y);  x = (1 - c)*x + c*z;  var = (1 - beta)*z + beta*x
template <typename T, bool kAdam, bool kFirst>
void ScheduleFreeShard(const Step<T>& s, int64_t begin, int64_t end) {
  T* __restrict var = s.state[0];
  T* __restrict z = s.state[1];
  T* __restrict x = s.state[2];
  T* __restrict v = kAdam ? s.state[3] : nullptr;
  const T* __restrict g = s.grad;
  const T beta = s.c[1], c = s.c[2], lr = s.c[3], wd = s.c[4];
  const T b2 = kAdam ? s.c[5] : T(0), c2 = kAdam ? s.c[6] : T(0), k2 = kAdam ? s.c[7] : T(0), eps = kAdam ? s.c[8] : T(0);
  const T keep = T(1) - beta, stay = T(1) - c;
  for (int64_t i = begin; i < end; ++i) {
    const T zi = kFirst ? var[i] : z[i];
    const T xi = kFirst ? var[i] : x[i];
    const T y = keep * zi + beta * xi;
    T d = g[i];
    if (kAdam) {
      const T vi = b2 * v[i] + c2 * (d * d);
      v[i] = vi;
      d = d / (std::sqrt(vi / k2) + eps);
    }
    const T z_new = zi - lr * (d + wd * y);
    const T x_new = stay * xi + c * z_new;
    z[i] = z_new;
    x[i] = x_new;
    var[i] = keep * z_new + beta * x_new;
  }
}

template <typename T>
class ScheduleFreeOp : public OpKernel {
 public:
  explicit ScheduleFreeOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("adam", &adam_));
    GetLayout(ctx, "ScheduleFree", adam_ ? 4 : 3, &vars_, &per_var_);
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& coefficients = ctx->input(ctx->num_inputs() - 1);
    OP_REQUIRES(ctx, coefficients.NumElements() > 0, errors::InvalidArgument("optimlab ScheduleFree: no coefficients"));
    const bool first = coefficients.flat<T>()(0) != T(0);
    WithFlags(
        [&](auto adam, auto first_step) {
          constexpr bool kAdam = decltype(adam)::value;
          RunUpdate<T>(ctx, vars_, per_var_, kAdam ? 40 : 20, kAdam ? 9 : 5,
                       ScheduleFreeShard<T, kAdam, decltype(first_step)::value>);
        },
        adam_, first);
  }

 private:
  bool adam_;
  int vars_, per_var_;
};

}  // namespace

REGISTER_OP("OptimlabApplyAdam")
    .Input("handles: n * resource")
    .Input("grad: T")
    .Input("coefficients: T")
    .Attr("n: int >= 3")
    .Attr("T: {float, double}")
    .Attr("amsgrad: bool = false")
    .Attr("form: {'paper', 'keras', 'lazy'} = 'paper'")
    .Attr("decay: bool = false")
    .SetIsStateful()
    .SetShapeFn(shape_inference::NoOutputs);

REGISTER_OP("OptimlabApplySgdMomentum")
    .Input("handles: n * resource")
    .Input("grad: T")
    .Input("coefficients: T")
    .Attr("n: int >= 2")
    .Attr("T: {float, double}")
    .Attr("nesterov: bool = false")
    .Attr("change_form: bool = false")
    .Attr("decay: bool = false")
    .SetIsStateful()
    .SetShapeFn(shape_inference::NoOutputs);

REGISTER_OP("OptimlabApplyRmsprop")
    .Input("handles: n * resource")
    .Input("grad: T")
    .Input("coefficients: T")
    .Attr("n: int >= 2")
    .Attr("T: {float, double}")
    .Attr("centered: bool = false")
    .Attr("momentum: bool = false")
    .Attr("epsilon_inside_sqrt: bool = true")
    .Attr("decay: bool = false")
    .SetIsStateful()
    .SetShapeFn(shape_inference::NoOutputs);

REGISTER_OP("OptimlabApplyAdagrad")
    .Input("handles: n * resource")
    .Input("grad: T")
    .Input("coefficients: T")
    .Attr("n: int >= 2")
    .Attr("T: {float, double}")
    .Attr("epsilon_inside_sqrt: bool = true")
    .Attr("decay: bool = false")
    .SetIsStateful()
    .SetShapeFn(shape_inference::NoOutputs);

REGISTER_OP("OptimlabMultiApplyAdagrad")
    .Input("handles: M * resource")
    .Input("grads: N * T")
    .Input("coefficients: T")
    .Attr("M: int >= 2")
    .Attr("N: int >= 1")
    .Attr("T: {float, double}")
    .Attr("epsilon_inside_sqrt: bool = true")
    .Attr("decay: bool = false")
    .SetIsStateful()
    .SetShapeFn(shape_inference::NoOutputs);

REGISTER_OP("OptimlabApplyLars")
    .Input("handles: n * resource")
    .Input("grad: T")
    .Input("coefficients: T")
    .Attr("n: int >= 2")
    .Attr("T: {float, double}")
    .Attr("nesterov: bool = false")
    .Attr("adapted: bool = true")
    .SetIsStateful()
    .SetShapeFn(shape_inference::NoOutputs);

REGISTER_OP("OptimlabApplyScheduleFree")
    .Input("handles: n * resource")
    .Input("grad: T")
    .Input("coefficients: T")
    .Attr("n: int >= 3")
    .Attr("T: {float, double}")
    .Attr("adam: bool = false")
    .SetIsStateful()
    .SetShapeFn(shape_inference::NoOutputs);

REGISTER_OP("OptimlabApplyConditionalGradient")
    .Input("handles: n * resource")
    .Input("grad: T")
    .Input("coefficients: T")
    .Attr("n: int >= 1")
    .Attr("T: {float, double}")
    .Attr("norm: bool = false")
    .SetIsStateful()
    .SetShapeFn(shape_inference::NoOutputs);

// Multi-tensor forms: ``N`` variables in one call. ``handles`` holds each variable
// followed by its slots (as the single-tensor op), variable after variable;
// ``grads`` their gradients in the same order; one coefficient vector for all.
REGISTER_OP("OptimlabMultiApplyAdam")
    .Input("handles: M * resource")
    .Input("grads: N * T")
    .Input("coefficients: T")
    .Attr("M: int >= 3")
    .Attr("N: int >= 1")
    .Attr("T: {float, double}")
    .Attr("amsgrad: bool = false")
    .Attr("form: {'paper', 'keras', 'lazy'} = 'paper'")
    .Attr("decay: bool = false")
    .SetIsStateful()
    .SetShapeFn(shape_inference::NoOutputs);

REGISTER_OP("OptimlabMultiApplyGradientDescent")
    .Input("handles: M * resource")
    .Input("grads: N * T")
    .Input("coefficients: T")
    .Attr("M: int >= 1")
    .Attr("N: int >= 1")
    .Attr("T: {float, double}")
    .Attr("decay: bool = false")
    .SetIsStateful()
    .SetShapeFn(shape_inference::NoOutputs);

REGISTER_OP("OptimlabMultiApplySgdMomentum")
    .Input("handles: M * resource")
    .Input("grads: N * T")
    .Input("coefficients: T")
    .Attr("M: int >= 2")
    .Attr("N: int >= 1")
    .Attr("T: {float, double}")
    .Attr("nesterov: bool = false")
    .Attr("change_form: bool = false")
    .Attr("decay: bool = false")
    .SetIsStateful()
    .SetShapeFn(shape_inference::NoOutputs);

REGISTER_OP("OptimlabMultiApplyRmsprop")
    .Input("handles: M * resource")
    .Input("grads: N * T")
    .Input("coefficients: T")
    .Attr("M: int >= 2")
    .Attr("N: int >= 1")
    .Attr("T: {float, double}")
    .Attr("centered: bool = false")
    .Attr("momentum: bool = false")
    .Attr("epsilon_inside_sqrt: bool = true")
    .Attr("decay: bool = false")
    .SetIsStateful()
    .SetShapeFn(shape_inference::NoOutputs);

#define OPTIMLAB_REGISTER_KERNEL(name, T, Op) \
  REGISTER_KERNEL_BUILDER(Name(name).Device(DEVICE_CPU).TypeConstraint<T>("T"), Op<T>);
#define OPTIMLAB_REGISTER(T)                                         \
  OPTIMLAB_REGISTER_KERNEL("OptimlabApplyAdam", T, AdamOp)             \
  OPTIMLAB_REGISTER_KERNEL("OptimlabMultiApplyAdam", T, AdamOp)        \
  OPTIMLAB_REGISTER_KERNEL("OptimlabMultiApplyGradientDescent", T, GradientDescentOp) \
  OPTIMLAB_REGISTER_KERNEL("OptimlabApplySgdMomentum", T, SgdOp)       \
  OPTIMLAB_REGISTER_KERNEL("OptimlabMultiApplySgdMomentum", T, SgdOp)  \
  OPTIMLAB_REGISTER_KERNEL("OptimlabApplyRmsprop", T, RmspropOp)       \
  OPTIMLAB_REGISTER_KERNEL("OptimlabMultiApplyRmsprop", T, RmspropOp)   \
  OPTIMLAB_REGISTER_KERNEL("OptimlabApplyAdagrad", T, AdagradOp)     \
  OPTIMLAB_REGISTER_KERNEL("OptimlabMultiApplyAdagrad", T, AdagradOp) \
  OPTIMLAB_REGISTER_KERNEL("OptimlabApplyLars", T, LarsOp)           \
  OPTIMLAB_REGISTER_KERNEL("OptimlabApplyScheduleFree", T, ScheduleFreeOp)  \
  OPTIMLAB_REGISTER_KERNEL("OptimlabApplyConditionalGradient", T, ConditionalGradientOp)

OPTIMLAB_REGISTER(float)
OPTIMLAB_REGISTER(double)
#undef OPTIMLAB_REGISTER
#undef OPTIMLAB_REGISTER_KERNEL

}  // namespace tensorflow

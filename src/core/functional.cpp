#include "tlora/core/functional.h"

#include "tlora/core/random.h"

#include "core/tri_linear_cuda.h"
#include "core/tri_math.h"

#include <ATen/TensorOperators.h>
#include <ATen/autocast_mode.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/mm.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

namespace tlora {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using detail::accumulate_type;
using detail::scaled_core_down;

void check_inputs(const at::Tensor& x, const TriLinearWeights& w, std::string_view name) {
  TORCH_CHECK(x.defined(), name, ": input is undefined");
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), name,
              ": input must be a floating-point tensor, got ", x.scalar_type());
  TORCH_CHECK(w.weight.defined() && w.weight.dim() == 2, name, ": weight must be 2-D (out×in)");
  const int64_t out = w.weight.size(0);
  const int64_t in = w.weight.size(1);
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == in, name, ": input shape ", x.sizes(),
              " does not end in in_features=", in);
  TORCH_CHECK(w.down.defined() && w.down.dim() == 2 && w.down.size(1) == in, name,
              ": down (A) must be r×", in, ", got ", w.down.sizes());
  const int64_t r = w.down.size(0);
  TORCH_CHECK(w.up.defined() && w.up.dim() == 2 && w.up.size(0) == out && w.up.size(1) == r, name,
              ": up (B) must be ", out, "×", r, ", got ", w.up.sizes());
  TORCH_CHECK(w.core.defined() && w.core.dim() == 2 && w.core.size(0) == r && w.core.size(1) == r,
              name, ": core (M) must be ", r, "×", r, ", got ", w.core.sizes());
  TORCH_CHECK(w.scale.defined() && w.scale.numel() == 1, name,
              ": scale (alpha) must have one element, got shape ", w.scale.sizes());
  TORCH_CHECK(!w.bias.defined() || (w.bias.dim() == 1 && w.bias.size(0) == out), name,
              ": bias must have shape [", out, "], got ", w.bias.sizes());
  for (const at::Tensor* t : {&w.weight, &w.down, &w.up, &w.bias}) {
    TORCH_CHECK(!t->defined() || t->scalar_type() == x.scalar_type(), name, ": input dtype ",
                x.scalar_type(), " differs from the layer's dtype ", t->scalar_type());
  }
  for (const at::Tensor* t : {&w.weight, &w.down, &w.up, &w.core, &w.scale, &w.bias}) {
    TORCH_CHECK(!t->defined() || t->device() == x.device(), name, ": input is on ", x.device(),
                " but the layer is on ", t->device());
  }
  TORCH_CHECK(at::isFloatingType(w.core.scalar_type()) && at::isFloatingType(w.scale.scalar_type()),
              name, ": core and scale must be floating point");
}

void check_dropout(const AdapterDropout& d, std::string_view name) {
  TORCH_CHECK(d.p >= 0.0 && d.p < 1.0, name, ": dropout must be in [0, 1), got ", d.p);
}

at::Tensor mask_like(const at::Tensor& t, const AdapterDropout& d) {
  return philox_dropout_mask(t.sizes(), d.p, d.seed, d.stream, t.options());
}

// x·p (N×k by k×r) for a narrow r. Under 16 columns MKL's sgemm runs this product 2–5× slower
// than the same numbers formed as (pᵀ·xᵀ)ᵀ (r=8, N=512, k=576–1536: 0.2–1.0 ms against
// 0.08–0.26 ms on one AMD EPYC core); from 16 on the two forms cost about the same.
at::Tensor narrow_product(const at::Tensor& x, const at::Tensor& p) {
  return p.size(1) < 16 ? p.t().mm(x.t()).t() : x.mm(p);
}

// W_eff = W0 + B·(α·M·A). The rank-r update runs in W0's own dtype: for half precision a round
// trip of W0 through fp32 costs three times as much and stays within the accuracy budget.
at::Tensor merged_weight(const at::Tensor& weight, const at::Tensor& up, const at::Tensor& core,
                         const at::Tensor& down, const at::Tensor& scale) {
  const at::ScalarType acc = accumulate_type(weight.scalar_type());
  return at::addmm(weight, up, scaled_core_down(core, down, scale, acc).to(weight.scalar_type()));
}

struct TriLinearFunction : public torch::autograd::Function<TriLinearFunction> {
  // Saved-tensor slots, in order.
  enum Slot { kU, kWeight, kDown, kUp, kCore, kScale, kInput };

  // The bias is optional rather than undefined: autograd records every tensor input's metadata.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const std::optional<at::Tensor>& maybe_bias, const at::Tensor& down,
                            const at::Tensor& up, const at::Tensor& core, const at::Tensor& scale,
                            bool merged, AdapterDropout dropout, std::string_view name) {
    const int64_t in = weight.size(1);
    const at::Tensor bias = maybe_bias.value_or(at::Tensor());
    const at::Tensor x2 = x.reshape({-1, in});
    const at::ScalarType acc = accumulate_type(x.scalar_type());
    const bool drop_in = dropout.p > 0 && dropout.position == DropoutPosition::Input;
    const bool drop_out = dropout.p > 0 && dropout.position == DropoutPosition::Output;

    // The CUDA kernels give no gradients for A and B, so an adapter that trains them (LoRA)
    // takes the ATen path.
    const bool factors_train = down.requires_grad() || up.requires_grad();
    const bool fused = !factors_train && cuda_path::takes(x2, down.size(0));
    at::Tensor u, y;
    if (fused) {
      cuda_path::Forward f =
          cuda_path::forward(x2, {weight, bias, down, up, core, scale}, merged, dropout, name);
      u = std::move(f.u);
      y = std::move(f.y);
    } else if (merged) {
      u = narrow_product(x2, down.t()).to(acc);
      const at::Tensor w_eff = merged_weight(weight, up, core, down, scale);
      y = bias.defined() ? at::addmm(bias, x2, w_eff.t()) : x2.mm(w_eff.t());
    } else {
      const at::Tensor adapter_in = drop_in ? x2 * mask_like(x2, dropout) : x2;
      u = narrow_product(adapter_in, down.t()).to(acc);
      y = bias.defined() ? at::addmm(bias, x2, weight.t()) : x2.mm(weight.t());
      const at::Tensor scaled_v =
          u.mm(detail::scaled_core(core, scale, acc).t()).to(x.scalar_type());
      if (drop_out) {
        y.add_(scaled_v.mm(up.t()) * mask_like(y, dropout));
      } else {
        y.addmm_(scaled_v, up.t());
      }
    }

    // Only u is an activation; the rest are the layer's own tensors, held by reference. W_eff
    // is rebuilt in backward rather than kept, so no weight-sized tensor lives between the
    // passes. x is kept only when W0 or A trains (full fine-tuning: dW = Gᵀ·x; LoRA: dA needs
    // x, its dropout mask regenerated).
    const bool keep_input = weight.requires_grad() || down.requires_grad();
    ctx->save_for_backward({u, weight, down, up, core, scale, keep_input ? x2 : at::Tensor()});
    ctx->saved_data["fused"] = fused;
    ctx->saved_data["merged"] = merged;
    ctx->saved_data["p"] = dropout.p;
    ctx->saved_data["input_dropout"] = drop_in;
    ctx->saved_data["seed"] = static_cast<int64_t>(dropout.seed);
    ctx->saved_data["stream"] = static_cast<int64_t>(dropout.stream);
    ctx->saved_data["has_bias"] = bias.defined();
    ctx->saved_data["name"] = std::string(name);

    auto shape = x.sizes().vec();
    shape.back() = weight.size(0);
    return y.view(shape);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor& u = saved[kU];
    const at::Tensor& weight = saved[kWeight];
    const at::Tensor& down = saved[kDown];
    const at::Tensor& up = saved[kUp];
    const at::Tensor& core = saved[kCore];
    const at::Tensor& scale = saved[kScale];
    const bool merged = ctx->saved_data["merged"].toBool();
    AdapterDropout dropout;
    dropout.p = ctx->saved_data["p"].toDouble();
    dropout.seed = static_cast<uint64_t>(ctx->saved_data["seed"].toInt());
    dropout.stream = static_cast<uint64_t>(ctx->saved_data["stream"].toInt());
    const bool drop_in = ctx->saved_data["input_dropout"].toBool();
    const bool drop_out = dropout.p > 0 && !drop_in;
    dropout.position = drop_in ? DropoutPosition::Input : DropoutPosition::Output;
    // needs_input_grad counts tensor inputs only, so an absent bias shifts the later indices.
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    auto needs = [&](size_t arg) { return ctx->needs_input_grad(has_bias || arg < 2 ? arg : arg - 1); };

    const int64_t out = weight.size(0);
    const at::Tensor grad = grad_outputs[0].reshape({-1, out});
    const at::ScalarType acc = u.scalar_type();
    const at::Tensor alpha = scale.to(acc).reshape({});
    const at::Tensor core_acc = core.to(acc);
    variable_list grads(10);  // one per forward argument: 7 tensors, merged, dropout, name
    at::Tensor dx, gtu;
    if (ctx->saved_data["fused"].toBool()) {
      cuda_path::Backward b =
          cuda_path::backward(grad, u, {weight, {}, down, up, core, scale}, merged, dropout,
                              needs(0), ctx->saved_data["name"].toStringRef());
      dx = std::move(b.dx);
      gtu = std::move(b.gtu);
    } else {
      const at::Tensor grad_adapter = drop_out ? grad * mask_like(grad, dropout) : grad;
      const at::Tensor g = narrow_product(grad_adapter, up).to(acc);  // N×r
      // The gradient at u: dx's rank-r update and dA = duᵀ·drop(x) share it.
      at::Tensor du;
      if (needs(0) || needs(3)) du = g.mm(core_acc * alpha).to(grad.scalar_type());
      // The input mask, drawn once for both of its uses (it is x's, N×in, in x's dtype).
      const at::Tensor in_mask =
          drop_in && (needs(0) || needs(3))
              ? philox_dropout_mask({grad.size(0), weight.size(1)}, dropout.p, dropout.seed, dropout.stream, grad.options())
              : at::Tensor();
      if (needs(0)) {
        // Merged rebuilds W_eff (a rank-r pass over out×in) unless the rank-r update of dx (a
        // pass over N×in) is the smaller one, i.e. unless N ≤ out; both give the same dx.
        if (merged && grad.size(0) > out) {
          dx = grad.mm(merged_weight(weight, up, core, down, scale));
        } else {
          dx = grad.mm(weight);
          if (drop_in) {
            dx.add_(du.mm(down) * in_mask);
          } else {
            dx.addmm_(du, down);
          }
        }
      }
      // dM = α·gᵀu and dα = Σ g ⊙ (u·Mᵀ) = Σ (gᵀu) ⊙ M share the one r×r product gᵀu.
      if (needs(5) || needs(6)) gtu = g.t().mm(u);
      if (needs(3)) {
        const at::Tensor& x2 = saved[kInput];
        grads[3] = du.t().mm(drop_in ? x2 * in_mask : x2).to(down.scalar_type());
      }
      if (needs(4)) {
        // dB = Gᵀ·v with v = α·u·Mᵀ, the adapter's r-wide activation, rebuilt from u; formed
        // as (vᵀ·G)ᵀ, which MKL's sgemm runs 1.5–4× faster for r = 8–32.
        const at::Tensor v = u.mm((core_acc * alpha).t()).to(grad.scalar_type());
        grads[4] = v.t().mm(grad_adapter).t().to(up.scalar_type());
      }
    }
    if (needs(0)) {
      auto shape = grad_outputs[0].sizes().vec();
      shape.back() = weight.size(1);
      grads[0] = dx.view(shape);
    }
    if (needs(1)) grads[1] = grad.t().mm(saved[kInput]);
    if (has_bias && needs(2)) grads[2] = grad.sum(0);
    if (needs(5)) grads[5] = (gtu * alpha).to(core.scalar_type());
    if (needs(6)) grads[6] = (gtu * core_acc).sum().reshape(scale.sizes()).to(scale.scalar_type());
    return grads;
  }
};

}  // namespace

std::string_view to_string(Strategy strategy) {
  switch (strategy) {
    case Strategy::Auto: return "auto";
    case Strategy::Factored: return "factored";
    case Strategy::Merged: return "merged";
  }
  return "unknown";
}

std::string_view to_string(DropoutPosition position) {
  return position == DropoutPosition::Output ? "output" : "input";
}

Strategy choose_strategy(int64_t tokens, int64_t in_features, int64_t out_features, int64_t rank,
                         bool dropout_active) {
  (void)rank;  // both strategies pay the rank linearly; it cancels out of the comparison
  if (dropout_active) return Strategy::Factored;
  return tokens * (in_features + out_features) >= 2 * in_features * out_features
             ? Strategy::Merged
             : Strategy::Factored;
}

at::Tensor tri_linear(const at::Tensor& x, const TriLinearWeights& w, Strategy strategy,
                      const AdapterDropout& dropout, std::string_view name) {
  const c10::DeviceType device = x.device().type();
  if (at::autocast::is_autocast_available(device) && at::autocast::is_autocast_enabled(device)) {
    // Autocast does not reach into a custom autograd function, so apply its policy for a linear
    // layer here: input, weight, bias and the fixed projections in the autocast dtype (the
    // function accumulates the r×r math in float32), core and scale left as they are. Excluding
    // the autocast key also ends this branch for the inner call.
    const at::ScalarType dtype = at::autocast::get_autocast_dtype(device);
    c10::impl::ExcludeDispatchKeyGuard no_autocast(
        at::autocast::get_autocast_dispatch_key_from_device_type(device));
    const auto cast = [&](const at::Tensor& t) {
      return t.defined() ? at::autocast::cached_cast(dtype, t, device) : t;
    };
    return tri_linear(cast(x), {cast(w.weight), cast(w.bias), cast(w.down), cast(w.up), w.core, w.scale},
                      strategy, dropout, name);
  }
  check_inputs(x, w, name);
  check_dropout(dropout, name);
  const int64_t in = w.weight.size(1);
  const int64_t tokens = in == 0 ? 0 : x.numel() / in;
  if (strategy == Strategy::Auto) {
    strategy = choose_strategy(tokens, in, w.weight.size(0), w.down.size(0), dropout.p > 0);
  }
  TORCH_CHECK(strategy != Strategy::Merged || dropout.p == 0.0, name,
              ": the merged strategy cannot apply adapter dropout (p=", dropout.p,
              "); use factored or auto, or call eval()");
  const std::optional<at::Tensor> bias =
      w.bias.defined() ? std::optional<at::Tensor>(w.bias) : std::nullopt;
  return TriLinearFunction::apply(x, w.weight, bias, w.down, w.up, w.core, w.scale,
                                  strategy == Strategy::Merged, dropout, name);
}

at::Tensor tri_linear_composed(const at::Tensor& x, const TriLinearWeights& w,
                               const AdapterDropout& dropout) {
  check_inputs(x, w, "tri_linear_composed");
  check_dropout(dropout, "tri_linear_composed");
  const auto dt = x.scalar_type();
  const bool drop_in = dropout.p > 0 && dropout.position == DropoutPosition::Input;
  const bool drop_out = dropout.p > 0 && dropout.position == DropoutPosition::Output;
  const at::Tensor adapter_in = drop_in ? x * mask_like(x, dropout) : x;
  at::Tensor adapter =
      at::linear(at::linear(at::linear(adapter_in, w.down), w.core.to(dt)), w.up) *
      w.scale.to(dt).reshape({});
  if (drop_out) adapter = adapter * mask_like(adapter, dropout);
  return at::linear(x, w.weight, w.bias) + adapter;
}

at::Tensor tri_delta_weight(const at::Tensor& up, const at::Tensor& core, const at::Tensor& down,
                            const at::Tensor& scale) {
  const at::ScalarType acc = accumulate_type(up.scalar_type());
  return up.to(acc).mm(scaled_core_down(core, down, scale, acc)).to(up.scalar_type());
}

void tri_add_delta_weight_(at::Tensor& weight, const at::Tensor& up, const at::Tensor& core,
                           const at::Tensor& down, const at::Tensor& scale, std::string_view name) {
  if (cuda_path::takes(weight, down.size(0))) {
    cuda_path::add_delta_weight_(weight, up, core, down, scale, name);
  } else {
    weight.add_(tri_delta_weight(up, core, down, scale));
  }
}

}  // namespace tlora

#include "train/optimizer.h"

#include <cmath>
#include <cstring>

#include "core/error.h"

namespace bmh::train {

double lr_at(const AdamWConfig& c, int64_t it, int64_t max_steps) {
  if (it < c.warmup_steps) return c.lr * double(it + 1) / double(c.warmup_steps + 1);
  if (it > max_steps) return c.min_lr;
  const double span = double(std::max<int64_t>(1, max_steps - c.warmup_steps));
  const double ratio = double(it - c.warmup_steps) / span;
  const double coeff = 0.5 * (1.0 + std::cos(M_PI * ratio));
  return c.min_lr + coeff * (c.lr - c.min_lr);
}

bool decays(const std::string& name, const Shape& shape) {
  auto ends_with = [&](const char* s) {
    const size_t n = std::strlen(s);
    return name.size() >= n && name.compare(name.size() - n, n, s) == 0;
  };
  return shape.size() >= 2 && !ends_with(".A_log") && !ends_with(".D");
}

namespace {

template <class F> void each_value(const Tensor& t, F f) {
  if (t.dtype() == DType::F32)
    for (int64_t i = 0; i < t.numel(); ++i) f(double(t.data<float>()[i]));
  else if (t.dtype() == DType::F64)
    for (int64_t i = 0; i < t.numel(); ++i) f(t.data<double>()[i]);
  else
    fail("gradient of dtype ", dtype_name(t.dtype()), " (F32 or F64 expected)");
}

template <class T>
void adamw_update(T* p, T* m, T* v, const T* g, int64_t n, T lr, T wd, T b1, T b2, T eps, T bc1, T bc2_sqrt) {
  const T step_size = lr / bc1;
  for (int64_t i = 0; i < n; ++i) {
    p[i] *= T(1) - lr * wd;
    m[i] += (g[i] - m[i]) * (T(1) - b1);  // exp_avg.lerp_(grad, 1 - beta1)
    v[i] = v[i] * b2 + (T(1) - b2) * g[i] * g[i];
    const T denom = std::sqrt(v[i]) / bc2_sqrt + eps;
    p[i] -= step_size * (m[i] / denom);
  }
}

}  // namespace

double grad_norm(const TensorMap& grads) {
  double s = 0;
  for (const auto& [name, g] : grads) each_value(g, [&](double x) { s += x * x; });
  return std::sqrt(s);
}

void scale(TensorMap& grads, double f) {
  for (auto& [name, g] : grads) {
    if (g.dtype() == DType::F32)
      for (int64_t i = 0; i < g.numel(); ++i) g.data_mut<float>()[i] *= float(f);
    else
      for (int64_t i = 0; i < g.numel(); ++i) g.data_mut<double>()[i] *= f;
  }
}

double clip_grad_norm(TensorMap& grads, double max_norm) {
  const double total = grad_norm(grads);
  if (max_norm > 0) {
    const double coef = max_norm / (total + 1e-6);
    if (coef < 1) scale(grads, coef);
  }
  return total;
}

AdamW::AdamW(TensorMap& params, AdamWConfig cfg) : params_(params), cfg_(cfg) {
  for (const auto& [name, p] : params_) {
    if (p.dtype() != DType::F32 && p.dtype() != DType::F64)
      fail("AdamW: parameter '", name, "' is ", p.describe(), " (F32 or F64 expected)");
    m_[name] = Tensor::zeros(p.dtype(), p.shape());
    v_[name] = Tensor::zeros(p.dtype(), p.shape());
  }
}

void AdamW::step(const TensorMap& grads, double lr) {
  ++t_;
  const double bc1 = 1 - std::pow(cfg_.beta1, double(t_));
  const double bc2_sqrt = std::sqrt(1 - std::pow(cfg_.beta2, double(t_)));
  for (auto& [name, p] : params_) {
    auto it = grads.find(name);
    if (it == grads.end()) fail("AdamW: no gradient for parameter '", name, "'");
    const Tensor& g = it->second;
    if (g.dtype() != p.dtype() || g.shape() != p.shape())
      fail("AdamW: gradient of '", name, "' is ", g.describe(), " but the parameter is ", p.describe());
    const double wd = decays(name, p.shape()) ? cfg_.weight_decay : 0.0;
    if (p.dtype() == DType::F32)
      adamw_update<float>(p.data_mut<float>(), m_[name].data_mut<float>(), v_[name].data_mut<float>(),
                          g.data<float>(), p.numel(), float(lr), float(wd), float(cfg_.beta1), float(cfg_.beta2),
                          float(cfg_.eps), float(bc1), float(bc2_sqrt));
    else
      adamw_update<double>(p.data_mut<double>(), m_[name].data_mut<double>(), v_[name].data_mut<double>(),
                           g.data<double>(), p.numel(), lr, wd, cfg_.beta1, cfg_.beta2, cfg_.eps, bc1, bc2_sqrt);
  }
}

TensorMap AdamW::state() const {
  TensorMap s;
  for (const auto& [name, m] : m_) s["exp_avg." + name] = m;
  for (const auto& [name, v] : v_) s["exp_avg_sq." + name] = v;
  return s;
}

void AdamW::load_state(const TensorMap& s, int64_t steps_taken) {
  for (auto* part : {&m_, &v_}) {
    const std::string prefix = part == &m_ ? "exp_avg." : "exp_avg_sq.";
    for (auto& [name, dst] : *part) {
      auto it = s.find(prefix + name);
      if (it == s.end()) fail("optimizer state: no '", prefix, name, "'");
      if (it->second.dtype() != dst.dtype() || it->second.shape() != dst.shape())
        fail("optimizer state: '", prefix, name, "' is ", it->second.describe(), ", expected ", dst.describe());
      std::memcpy(dst.raw_mut(), it->second.raw(), dst.nbytes());
    }
  }
  t_ = steps_taken;
}

}  // namespace bmh::train

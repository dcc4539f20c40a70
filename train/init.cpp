// Family initialisation rules (see train/init.h for the official files each follows).
#include "train/init.h"

#include <cmath>

#include "core/error.h"
#include "core/model_weights.h"

namespace bmh::train {

namespace {

// splitmix64, seeded per tensor: portable (no std:: distributions, whose output is implementation-defined).
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }            // [0, 1)
  double uniform(double bound) { return (2 * uniform() - 1) * bound; }     // U(-bound, bound)
  double normal() {                                                        // Box-Muller
    const double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(2.0 * M_PI * u2);
  }
};

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

bool ends_with(const std::string& s, const std::string& t) {
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

enum class Scheme { Zyphra, MambaSsm, NeoX, Jamba };

Scheme scheme_of(const std::string& family) {
  if (family == "zyphra-blackmamba") return Scheme::Zyphra;
  if (family == "mamba-ssm" || family == "hf-mamba") return Scheme::MambaSsm;
  if (family == "hf-gpt-neox" || family == "bmh" || family == "hf-mixtral") return Scheme::NeoX;
  if (family == "hf-jamba") return Scheme::Jamba;
  fail("init: unknown model family '", family, "'");
}

// Fills v (numel values of a tensor of `shape`) by the rule for `name`.
void draw(const std::string& name, const Shape& shape, const ModelConfig& cfg, Scheme scheme,
          const InitOptions& o, Rng& rng, std::vector<double>& v) {
  const int64_t n = shape_numel(shape);
  const double fan_in = shape.size() == 2 ? double(shape[1]) : 1.0;
  auto fill = [&](auto f) {
    for (int64_t i = 0; i < n; ++i) v[size_t(i)] = f(i);
  };
  const bool mamba = name.find(".mamba.") != std::string::npos;
  if (ends_with(name, "norm.weight")) return fill([](int64_t) { return 1.0; });
  if (ends_with(name, "norm.bias")) return fill([](int64_t) { return 0.0; });
  if (name == "embed.weight") return fill([&](int64_t) { return o.initializer_range * rng.normal(); });
  if (mamba) {
    const int64_t N = shape.size() == 2 ? shape[1] : 1;
    if (ends_with(name, ".A_log")) return fill([&](int64_t i) { return std::log(double(i % N + 1)); });
    if (ends_with(name, ".D")) return fill([](int64_t) { return 1.0; });
  }
  if (mamba && scheme != Scheme::Jamba) {  // Jamba's mixers: its Linear/Conv1d rule below
    if (ends_with(name, ".dt_proj.weight")) {
      const double bound = std::pow(fan_in, -0.5) * o.dt_scale;
      return fill([&](int64_t) { return rng.uniform(bound); });
    }
    if (ends_with(name, ".dt_proj.bias"))
      return fill([&](int64_t) {
        double dt = std::exp(rng.uniform() * (std::log(o.dt_max) - std::log(o.dt_min)) + std::log(o.dt_min));
        dt = std::max(dt, o.dt_init_floor);
        return dt + std::log(-std::expm1(-dt));  // inverse softplus
      });
    if (ends_with(name, ".conv1d.weight") || ends_with(name, ".conv1d.bias")) {
      // nn.Conv1d(groups=Di): fan_in = in_channels / groups * kernel_size = K.
      const double K = double(cfg.blocks.at(std::stoi(name.substr(7))).mamba.d_conv);
      return fill([&](int64_t) { return rng.uniform(1.0 / std::sqrt(K)); });
    }
    if (ends_with(name, ".bias")) return fill([](int64_t) { return 0.0; });
    if (ends_with(name, ".out_proj.weight")) {
      const double scale = std::sqrt(double(cfg.n_blocks()));  // n_residuals_per_layer = 1
      return fill([&](int64_t) { return rng.uniform(1.0 / std::sqrt(fan_in)) / scale; });
    }
    return fill([&](int64_t) { return rng.uniform(1.0 / std::sqrt(fan_in)); });  // in_proj, x_proj
  }
  if (ends_with(name, ".bias")) return fill([](int64_t) { return 0.0; });  // every Linear bias, lm_head.bias
  if (scheme == Scheme::NeoX || scheme == Scheme::Jamba)
    return fill([&](int64_t) { return o.initializer_range * rng.normal(); });
  // Zyphra / mamba_ssm: nn.Linear's default kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)).
  return fill([&](int64_t) { return rng.uniform(1.0 / std::sqrt(fan_in)); });
}

}  // namespace

TensorMap init_weights(const ModelConfig& cfg, const std::string& family, uint64_t seed, DType dtype,
                       const InitOptions& opt) {
  if (dtype != DType::F32 && dtype != DType::F64) fail("init: dtype ", dtype_name(dtype), " is not F32 or F64");
  const Scheme scheme = scheme_of(family);
  TensorMap out;
  std::vector<double> v;
  for (const WeightSpec& w : expected_weights(cfg)) {
    Rng rng{seed ^ fnv1a(w.name)};
    v.assign(size_t(shape_numel(w.shape)), 0.0);
    draw(w.name, w.shape, cfg, scheme, opt, rng, v);
    Tensor t = Tensor::zeros(dtype, w.shape);
    for (size_t i = 0; i < v.size(); ++i) {
      if (dtype == DType::F32) t.data_mut<float>()[i] = float(v[i]);
      else t.data_mut<double>()[i] = v[i];
    }
    out[w.name] = std::move(t);
  }
  return out;
}

}  // namespace bmh::train

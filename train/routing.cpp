#include "train/routing.h"

#include <cmath>

#include "core/error.h"

namespace bmh::train {

std::vector<float> sinkhorn(const float* logits, int rows, int E, SinkhornInit init, int* iterations) {
  const size_t n = size_t(rows) * size_t(E);
  std::vector<float> cost(n);
  const float k = init == SinkhornInit::Zyphra ? 2.0f : 1.0f;
  for (size_t i = 0; i < n; ++i) cost[i] = std::exp(k * logits[i]);
  std::vector<float> d0(size_t(rows), 1.0f), d1(size_t(E), 1.0f);
  if (init == SinkhornInit::Zyphra) {
    std::vector<double> col(size_t(E), 0.0);
    for (int r = 0; r < rows; ++r)
      for (int e = 0; e < E; ++e) col[size_t(e)] += cost[size_t(r) * E + e];
    for (int e = 0; e < E; ++e) d1[size_t(e)] = 1.0f / (float(E) * float(col[size_t(e)]));
  }
  const float eps = 1e-8f, tol = 1e-4f;
  const float inv_rows = 1.0f / float(rows), inv_E = 1.0f / float(E);
  std::vector<float> d1_old = d1;
  std::vector<double> col(static_cast<size_t>(E));
  float error = 1e9f;
  int it = 0;
  while (error > tol && it < kSinkhornMaxIterations) {
    ++it;
    for (int r = 0; r < rows; ++r) {
      double s = 0;
      for (int e = 0; e < E; ++e) s += double(d1[size_t(e)]) * cost[size_t(r) * E + e];
      d0[size_t(r)] = inv_rows * (1.0f / (float(s) + eps));
    }
    std::fill(col.begin(), col.end(), 0.0);
    for (int r = 0; r < rows; ++r)
      for (int e = 0; e < E; ++e) col[size_t(e)] += double(d0[size_t(r)]) * cost[size_t(r) * E + e];
    double err = 0;
    for (int e = 0; e < E; ++e) {
      d1[size_t(e)] = inv_E * (1.0f / (float(col[size_t(e)]) + eps));
      err += std::fabs(double(d1_old[size_t(e)]) - d1[size_t(e)]);
    }
    error = float(err / E);
    d1_old = d1;
  }
  if (iterations) *iterations = it;
  std::vector<float> out(n);
  for (int r = 0; r < rows; ++r)
    for (int e = 0; e < E; ++e) out[size_t(r) * E + e] = d1[size_t(e)] * cost[size_t(r) * E + e] * d0[size_t(r)];
  return out;
}

SinkhornInit sinkhorn_init_from(const std::string& s) {
  if (s == "zyphra") return SinkhornInit::Zyphra;
  if (s == "megatron") return SinkhornInit::Megatron;
  fail("unknown sinkhorn init '", s, "' (zyphra, megatron)");
}

namespace {

// First index of the maximum (torch.max / argmax pick the first on ties).
int64_t argmax(const float* v, int E) {
  int best = 0;
  for (int e = 1; e < E; ++e)
    if (v[e] > v[best]) best = e;
  return best;
}

}  // namespace

std::unique_ptr<RoutingHook> make_routing_hook(const std::string& routing, SinkhornInit init,
                                               std::shared_ptr<RoutingStats> stats, double aux_loss_coef) {
  if (routing == "argmax" && aux_loss_coef == 0) return nullptr;
  auto hook = std::make_unique<RoutingHook>();
  hook->aux_loss_coef = aux_loss_coef;
  if (routing == "argmax") {
    // inference routing; the hook only carries the auxiliary loss
  } else if (routing == "sinkhorn") {
    hook->choose = [init, stats](int, int rows, int E, const float* logits, int64_t* expert) {
      int it = 0;
      const std::vector<float> p = sinkhorn(logits, rows, E, init, &it);
      for (int r = 0; r < rows; ++r) expert[r] = argmax(p.data() + size_t(r) * E, E);
      if (stats) {
        ++stats->calls;
        stats->iterations += it;
        stats->unconverged_calls += it >= kSinkhornMaxIterations;
      }
    };
  } else if (routing == "top1") {
    hook->softmax_gate = true;  // output * max softmax probability (switch_mlp.py)
    hook->choose = [stats](int, int rows, int E, const float* logits, int64_t* expert) {
      std::vector<float> p(static_cast<size_t>(E));
      for (int r = 0; r < rows; ++r) {
        const float* l = logits + size_t(r) * E;
        const float mx = l[argmax(l, E)];
        float s = 0;
        for (int e = 0; e < E; ++e) s += p[size_t(e)] = std::exp(l[e] - mx);
        for (int e = 0; e < E; ++e) p[size_t(e)] /= s;
        expert[r] = argmax(p.data(), E);
      }
      if (stats) ++stats->calls;
    };
  } else {
    fail("unknown routing '", routing, "' (sinkhorn, top1, argmax)");
  }
  return hook;
}

}  // namespace bmh::train

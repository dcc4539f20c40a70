#include "core/router.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/half.h"

namespace bmh {

std::string RouterPrecision::describe() const {
  if (!model_dtype) return "fp32";
  return half == DType::F32 ? "model" : std::string("model (") + (half == DType::BF16 ? "bf16" : "fp16") + ")";
}

RouterPrecision parse_router_precision(const std::string& s) {
  RouterPrecision p;
  if (s == "fp32") return p;
  p.model_dtype = true;
  if (s == "model") return p;
  if (s == "bf16") p.half = DType::BF16;
  else if (s == "fp16") p.half = DType::F16;
  else fail("--router-precision '", s, "' is not one of fp32, model, bf16, fp16");
  return p;
}

DType router_rounding(const RouterPrecision& p, DType compute) {
  if (!p.model_dtype) return DType::F32;
  if (p.half != DType::F32) return p.half;
  return compute == DType::BF16 || compute == DType::F16 ? compute : DType::F32;
}

double round_to(DType half, double v) {
  if (half == DType::BF16) return bf16_to_f32(f32_to_bf16(float(v)));
  if (half == DType::F16) return f16_to_f32(f32_to_f16(float(v)));
  return v;
}

template <class T>
TokenRoute route_token(const MlpSpec& s, const T* logits, DType half, const int64_t* forced) {
  const int E = s.n_experts, k = s.top_k;
  if (k < 1 || k > kMaxTopK || k > E) fail("router: top_k ", k, " must be in [1, min(", kMaxTopK, ", ", E, ")]");
  TokenRoute r;
  const bool rounding = half == DType::BF16 || half == DType::F16;
  for (int e = 0; e < E; ++e)
    if (std::isnan(double(logits[e]))) fail("router: logit of expert ", e, " is NaN");
  if (s.router == RouterKind::SigmoidTop1) {
    if (k != 1) fail("router: the sigmoid router is top-1, not top-", k);
    // Exact: sigmoid in T (saturates to exactly 1 in fp32 for large logits, as Zyphra's fp32 run does).
    // Half: torch computes the half sigmoid in fp32 from the rounded logit and rounds the result.
    auto prob = [&](int e) -> double {
      if (!rounding) return double(T(1) / (T(1) + std::exp(-logits[e])));
      // The fp32 sigmoid of the rounded logit, correctly rounded (exp in double) so that host and device agree
      // bit for bit; torch's own fp32 sigmoid differs from it by at most an ulp, invisible after rounding to the
      // half type except within an ulp of a rounding midpoint.
      const double l = round_to(half, double(logits[e]));
      return round_to(half, double(float(1.0 / (1.0 + std::exp(-l)))));
    };
    int best = 0;
    double pb = prob(0);
    int n_at_max = 1;
    for (int e = 1; e < E; ++e) {
      const double p = prob(e);
      if (p > pb) pb = p, best = e, n_at_max = 1;
      else if (p == pb) ++n_at_max;
    }
    r.tie = n_at_max > 1;
    if (forced) {
      if (forced[0] < 0 || forced[0] >= E) fail("forced route ", forced[0], " is outside [0, ", E, ")");
      best = int(forced[0]);
      pb = prob(best);
    }
    r.expert[0] = best;
    r.weight[0] = pb;
    return r;
  }
  // Softmax: exact in T; half mode in fp32 from the rounded logits.
  double w[512];
  if (E > 512) fail("router: ", E, " experts > 512");
  if (!rounding) {
    T mx = logits[0];
    for (int e = 1; e < E; ++e) mx = std::max(mx, logits[e]);
    T sum = 0;
    for (int e = 0; e < E; ++e) sum += std::exp(logits[e] - mx);
    for (int e = 0; e < E; ++e) w[e] = double(std::exp(logits[e] - mx) / sum);
  } else {
    // fp32 softmax of the rounded logits; each exp correctly rounded to fp32 (computed in double) so that the
    // device's kernel (kernels/router.cu) gives the same bits.
    float l[512], ex[512], mx = -INFINITY, sum = 0;
    for (int e = 0; e < E; ++e) mx = std::max(mx, l[e] = float(round_to(half, double(logits[e]))));
    for (int e = 0; e < E; ++e) sum += ex[e] = float(std::exp(double(l[e] - mx)));
    for (int e = 0; e < E; ++e) w[e] = double(ex[e] / sum);
  }
  // Top-k: descending weight, ties to the lower index (a stable selection).
  int order[512];
  for (int e = 0; e < E; ++e) order[e] = e;
  std::stable_sort(order, order + E, [&](int a, int b) { return w[a] > w[b]; });
  r.tie = k < E && w[order[k - 1]] == w[order[k]];
  for (int j = 0; j < k; ++j) {
    int e = order[j];
    if (forced) {
      if (forced[j] < 0 || forced[j] >= E) fail("forced route ", forced[j], " is outside [0, ", E, ")");
      e = int(forced[j]);
    }
    r.expert[j] = e;
    r.weight[j] = w[e];
  }
  // Mixtral: routing_weights /= routing_weights.sum() in fp32 (in T when exact).
  if (s.renormalize) {
    if (!rounding) {
      T sum = 0;
      for (int j = 0; j < k; ++j) sum += T(r.weight[j]);
      for (int j = 0; j < k; ++j) r.weight[j] = double(T(r.weight[j]) / sum);
    } else {
      float sum = 0;
      for (int j = 0; j < k; ++j) sum += float(r.weight[j]);
      for (int j = 0; j < k; ++j) r.weight[j] = double(float(r.weight[j]) / sum);
    }
  }
  if (rounding)
    for (int j = 0; j < k; ++j) r.weight[j] = round_to(half, r.weight[j]);
  return r;
}

template TokenRoute route_token<float>(const MlpSpec&, const float*, DType, const int64_t*);
template TokenRoute route_token<double>(const MlpSpec&, const double*, DType, const int64_t*);

}  // namespace bmh

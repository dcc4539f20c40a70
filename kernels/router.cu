#include "core/error.h"
#include "kernels/common.cuh"
#include "kernels/launch.cuh"
#include "kernels/router.cuh"

namespace bmh::cuda {

__device__ __forceinline__ float round_half(float x, int half) {
  if (half == 1) return __bfloat162float(__float2bfloat16_rn(x));
  if (half == 2) return __half2float(__float2half_rn(x));
  return x;
}

constexpr int kMaxK = 8;

__global__ void router_topk_kernel(RouterArgs a) {
  pdl_trigger();
  pdl_wait();
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= a.R) return;
  float* row = a.logits + (int64_t)r * a.E;
  const int E = a.E, k = a.k;
  bool nan = false;
  for (int e = 0; e < E; ++e) {
    const float l = row[e] + (a.bias ? a.bias[e] : 0.f);
    row[e] = l;
    nan |= l != l;
  }
  int ex[kMaxK];
  float w[kMaxK];
  bool tie = false;
  if (nan) {
    atomicCAS(a.nan_flag, 0, a.tag);
    for (int j = 0; j < k; ++j) ex[j] = 0, w[j] = 0.f;
  } else if (!a.softmax) {
    // p(e) for the sigmoid router, in the arithmetic of the chosen precision.
    // Exact mode: fp32 as the existing kernels. Half mode: the sigmoid of the rounded logit correctly rounded to
    // fp32 (in double), the same bits as core/router.h computes on the host, then rounded to the half type.
    auto prob = [&](int e) {
      if (!a.half) return 1.f / (1.f + expf(-row[e]));
      const double l = round_half(row[e], a.half);
      return round_half(float(1.0 / (1.0 + exp(-l))), a.half);
    };
    int best = 0, at_max = 1;
    float pb = prob(0);
    for (int e = 1; e < E; ++e) {
      const float p = prob(e);
      if (p > pb) pb = p, best = e, at_max = 1;
      else if (p == pb) ++at_max;
    }
    tie = at_max > 1;
    if (a.forced) best = int(a.forced[r]), pb = prob(best);
    ex[0] = best;
    w[0] = pb;
  } else {
    float mx = -INFINITY, sum = 0.f;
    for (int e = 0; e < E; ++e) mx = fmaxf(mx, round_half(row[e], a.half));
    // Half mode: each exp correctly rounded to fp32 (in double), as core/router.h does, so host and device agree.
    auto expo = [&](int e) {
      const float x = round_half(row[e], a.half) - mx;
      return a.half ? float(exp(double(x))) : expf(x);
    };
    for (int e = 0; e < E; ++e) sum += expo(e);
    auto prob = [&](int e) { return expo(e) / sum; };
    // k passes: the largest not yet taken, lower index first on equal values (strict > keeps the first).
    unsigned taken = 0;  // E <= 32 for the bitmask; larger E checked on the host
    for (int j = 0; j < k; ++j) {
      int best = -1;
      float pb = -1.f;
      for (int e = 0; e < E; ++e)
        if (!(taken >> e & 1u)) {
          const float p = prob(e);
          if (p > pb) pb = p, best = e;
        }
      taken |= 1u << best;
      ex[j] = best;
      w[j] = pb;
    }
    for (int e = 0; e < E && k < E; ++e)
      if (!(taken >> e & 1u) && prob(e) == w[k - 1]) tie = true;
    if (a.forced)
      for (int j = 0; j < k; ++j) ex[j] = int(a.forced[(int64_t)r * k + j]), w[j] = prob(ex[j]);
    if (a.renormalize) {
      float s = 0.f;
      for (int j = 0; j < k; ++j) s += w[j];
      for (int j = 0; j < k; ++j) w[j] /= s;
    }
    for (int j = 0; j < k; ++j) w[j] = round_half(w[j], a.half);
  }
  for (int j = 0; j < k; ++j) {
    a.expert[(int64_t)r * k + j] = ex[j];
    a.gate[(int64_t)r * k + j] = w[j];
    if (a.expert_sm) a.expert_sm[(int64_t)j * a.R + r] = ex[j];
    if (a.gate_sm) a.gate_sm[(int64_t)j * a.R + r] = w[j];
  }
  if (a.tie) a.tie[r] = tie;
}

void router_topk(const RouterArgs& a, cudaStream_t s) {
  if (a.k < 1 || a.k > kMaxK || a.k > a.E) fail("cuda router: top-", a.k, " of ", a.E, " experts (at most top-", kMaxK, ")");
  if (a.softmax && a.E > 32) fail("cuda router: ", a.E, " experts > 32 for the softmax top-k router");
  if (!a.softmax && a.k != 1) fail("cuda router: the sigmoid router is top-1");
  if (!a.nan_flag) fail("cuda router: no NaN flag");
  if (a.R == 0) return;
  launch_kernel(router_topk_kernel, (a.R + 127) / 128, 128, 0, s, a);
  BMH_LAUNCH("router_topk_kernel");
}

}  // namespace bmh::cuda

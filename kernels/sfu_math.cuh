// Elementwise math through the SFU's approximations (ex2/lg2/rcp.approx) and torch's softplus and SiLU built from
// them, for kernels where expf / log1pf / IEEE division would be most of the instructions. Accuracy beside each.
#pragma once

namespace bmh::cuda {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// 2^x (exp(x) = ex2_approx(x log2 e): common.cuh's exp_sfu; the scans fold log2 e into A once).
__device__ __forceinline__ float ex2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ float lg2_approx(float x) {
  float y;
  asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ float rcp_approx(float x) {
  float y;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// torch softplus (beta 1, threshold 20) in ~20 instructions instead of log1pf(expf(x))'s ~60, relative error
// <= ~2e-6: softplus(x) = max(x, 0) + log1p(w), w = exp(-|x|) in (0, 1]; log1p(w) by its series through w^7 when
// w < 0.1 (truncation < w^8 / 8), else ln(1 + w) by lg2.approx (abs error ~2^-22) plus the rounding of 1 + w.
__device__ __forceinline__ float softplus_fast(float x) {
  const float w = ex2_approx(-fabsf(x) * kLog2e);
  float p = fmaf(-w, 1.f / 7.f, 1.f / 6.f);
  p = fmaf(-w, p, 1.f / 5.f);
  p = fmaf(-w, p, 1.f / 4.f);
  p = fmaf(-w, p, 1.f / 3.f);
  p = fmaf(-w, p, 1.f / 2.f);
  p = fmaf(-w, p, 1.f);
  const float s = 1.f + w;
  const float l = w < 0.1f ? w * p : fmaf(lg2_approx(s), kLn2, w - (s - 1.f));
  return x > 20.f ? x : fmaxf(x, 0.f) + l;
}
// silu(z) = z / (1 + exp(-z)) through ex2 and rcp approximations (relative error ~1e-7; z -> -inf gives -0).
__device__ __forceinline__ float silu_fast(float z) { return z * rcp_approx(1.f + ex2_approx(-z * kLog2e)); }

}  // namespace bmh::cuda

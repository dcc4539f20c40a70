// Pre-norm with the residual add fused, residual stream in fp32 (model_config.h residual scheme):
//   residual [R, d] fp32 += delta [R, d] (dtype t, row stride d; optional)
//   y [R, d] (dtype t) = norm(residual) * w (+ b)
// RMSNorm: x * rsqrt(mean(x^2) + eps) (Zyphra ops/triton/layernorm.py rms_norm_ref); LayerNorm: (x - mean) *
// rsqrt(biased var + eps) (torch.nn.LayerNorm). w, b are fp32 [d]; b may be null.
#pragma once
#include "core/model_config.h"
#include "kernels/device.h"

namespace bmh::cuda {
// vec = false keeps the scalar kernel even where the 16-byte one applies (the op table's bit-identity check).
void add_norm(NormKind kind, Dt t, float* residual, const void* delta, const float* w, const float* b, double eps,
              int R, int d, void* y, cudaStream_t s, bool vec = true);
}

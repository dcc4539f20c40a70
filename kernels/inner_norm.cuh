// Jamba's Mamba-mixer RMSNorms (transformers modeling_jamba.py JambaMambaMixer dt_layernorm, b_layernorm,
// c_layernorm): x[r, 0:n] (row stride ld, dtype t) = x * rsqrt(mean(x^2) + eps) * w, in fp32, in place.
#pragma once
#include "kernels/device.h"

namespace bmh::cuda {
void rms_norm_rows_inplace(Dt t, void* x, int ld, int R, int n, const float* w, float eps, cudaStream_t s);
}

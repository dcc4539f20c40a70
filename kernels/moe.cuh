// Switch MoE plumbing (Zyphra switch_mlp.py, top-1 with sigmoid gate):
//   router_top1:  logits [R, E] fp32 (x W_router^T) += bias; p = sigmoid(logits); expert[r] = argmax p (first on
//                 ties) or forced[r]; gate[r] = p[expert[r]]. forced ids must lie in [0, E) (checked by the caller).
//   moe_permute:  offsets [E+1] (device), perm [R] (sorted slot -> token row), xs [R, d] = x[perm] (dtype t),
//                 tokens grouped by expert so each expert runs one GEMM over rows offsets[e]..offsets[e+1].
//   moe_unpermute_add: residual[perm[i], :] += gate[perm[i]] * ys[i, :] (ys fp32 [R, d]).
#pragma once
#include <cstdint>

#include "kernels/device.h"

namespace bmh::cuda {
// A NaN logit routes the row to expert 0 and sets *nan_flag = tag (when nan_flag is given; see kernels/router.cuh).
void router_top1(float* logits, const float* bias, int R, int E, const int64_t* forced, int* expert, float* gate,
                 cudaStream_t s, int* nan_flag = nullptr, int tag = 1);
// scratch: 2*E ints of device memory. Top-k: expert [R, k] token-major; R*k assignments are grouped (perm holds
// assignment ids token*k + slot), xs [R*k, d], and inv [R*k] (optional) maps an assignment to its sorted place.
void moe_permute(Dt t, const int* expert, int R, int E, const void* x, int ldx, int d, int* offsets, int* perm,
                 void* xs, int* scratch, cudaStream_t s, int k = 1, int* inv = nullptr);
void moe_unpermute_add(const float* ys, const int* perm, const float* gate, int R, int d, float* residual,
                       cudaStream_t s);
//   moe_combine_add: residual[r, :] += sum over slots j in order of gate[r, j] * ys[inv[r*k + j], :] (top-k).
void moe_combine_add(const float* ys, const int* inv, const float* gate, int R, int k, int d, float* residual,
                     cudaStream_t s);
}

// MoE routing on the device, the same decision as core/router.h (one thread per token row; E and k are small):
//   SigmoidTop1 (Zyphra switch_mlp.py): p = sigmoid(l); the first maximal p; gate = p.
//   SoftmaxTopK (transformers modeling_mixtral.py / modeling_jamba.py): softmax over experts in fp32, the k largest
//     in descending order with ties to the lower index; Mixtral renormalises the k weights, Jamba not.
//   half = 0: exact fp32. half = 1 (bf16) / 2 (fp16): --router-precision model: logits rounded to that type first;
//     sigmoid computed in fp32 and rounded; softmax/top-k/renormalisation in fp32 and the weights rounded last.
// logits [R, E] fp32 (+= bias in place). Outputs: expert/gate [R, k] token-major; optionally expert_sm/gate_sm
// [k, R] slot-major (the decode GEMV indexes experts per row); tie [R] (a shared maximal / k-th gate value).
// forced [R, k] (or null) replaces the choice; the gates are then the router's for the forced experts.
// A NaN logit routes the row to expert 0 (always in range) and sets *nan_flag = tag if it was 0; the host reads the
// flag at its next synchronisation and fails naming the block (tag = block index + 1).
#pragma once
#include <cstdint>

#include "kernels/device.h"

namespace bmh::cuda {

struct RouterArgs {
  float* logits = nullptr;
  const float* bias = nullptr;
  int R = 0, E = 0, k = 1;
  bool softmax = false, renormalize = false;
  int half = 0;
  const int64_t* forced = nullptr;
  int* expert = nullptr;
  float* gate = nullptr;
  int* expert_sm = nullptr;
  float* gate_sm = nullptr;
  int* tie = nullptr;
  int* nan_flag = nullptr;
  int tag = 1;
};
void router_topk(const RouterArgs& a, cudaStream_t s);

}  // namespace bmh::cuda

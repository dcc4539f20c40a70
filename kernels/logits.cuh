// Fused log-softmax + gather + argmax over logits rows [R, V] fp32 (lm-eval loglikelihood without storing the
// full log-probabilities): logprob[r] = logits[r, target[r]] - logsumexp(logits[r, :]); greedy[r] = 1 when the
// target is the argmax (first index of the maximum, as torch.argmax), else 0; argmax[r] = that index (optional).
#pragma once
#include <cstdint>

#include "kernels/device.h"

namespace bmh::cuda {
void logsoftmax_gather(const float* logits, int R, int V, const int64_t* target, float* logprob, int* greedy,
                       int* argmax, cudaStream_t s);
// Greedy decoding on the device: out[r] = the first index of row r's maximum (as std::max_element, which
// core/sampling.cpp's greedy uses); has_nan[r] = 1 when row r holds a NaN (out[r] then undefined: the caller
// applies the host rule to that row).
void argmax_rows(const float* logits, int R, int V, int64_t* out, int* has_nan, cudaStream_t s);
}

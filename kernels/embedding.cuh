// Embedding gather into the fp32 residual stream: out [R, d] fp32 = table[ids[r], :] with table [V, d] in dtype t.
// ids are int64 and must already be checked to lie in [0, V) (check_input_ids).
#pragma once
#include <cstdint>

#include "kernels/device.h"

namespace bmh::cuda {
void embedding(Dt t, const void* table, const int64_t* ids, int R, int d, float* out, cudaStream_t s);
}

// NaN/Inf in a checkpoint's weights, found at load: a network with them computes all-NaN logits, which would
// otherwise surface (if at all) as a silently wrong result.
#pragma once
#include "core/checkpoint.h"

namespace bmh {

// Fails naming the file, the tensor, the count and the first non-finite element; with `allow`, prints one
// "bmh: warning:" line per such tensor to stderr instead.
void check_finite_weights(const Checkpoint& ckpt, bool allow);

// The number of non-finite elements of a float tensor and the index of the first (-1 if none).
int64_t count_nonfinite(const Tensor& t, int64_t* first);

}  // namespace bmh

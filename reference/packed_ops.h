// Packed (varlen) sequence ops: sequences back to back in one [L, ...] row, seq_idx[t] naming the sequence of row t
// (non-decreasing). These are the semantics a packed CUDA scoring path must implement; RefModel::run_packed gets the
// same by running each mixer segment by segment, and tests/test_reference_packed_ops.cpp checks the two agree.
#pragma once
#include <vector>

#include "reference/ops.h"

namespace bmh::ref {

// Causal depthwise conv1d + SiLU with causal-conv1d's seq_idx (csrc/causal_conv1d_fwd.cu, channel-last kernel:
// `seq_idx_thread[i + w] == seq_idx_cur ? weight * x : 0`): a tap on a row of another sequence counts as 0, so each
// sequence starts from a zero history. x [L, Di], w [Di, K], b [Di] or null -> [L, Di].
template <class T> Mat<T> causal_conv1d_silu_packed(const Mat<T>& x, const Mat<T>& w, const Vec<T>* b,
                                                    const std::vector<int>& seq_idx);

// selective_scan (reference/ops.h) over a packed row: the state is 0 at the first row of each sequence.
template <class T> Mat<T> selective_scan_packed(const Mat<T>& u, const Mat<T>& delta, const Mat<T>& A, const Mat<T>& B,
                                                const Mat<T>& C, const Vec<T>& D, const Mat<T>* z,
                                                const Vec<T>& delta_bias, const std::vector<int>& seq_idx);

}  // namespace bmh::ref

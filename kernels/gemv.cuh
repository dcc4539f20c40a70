// Decode GEMV for a few rows (B <= 8), optionally with a per-row expert (top-1 MoE without a permutation, so the
// decode step needs no host sync and can be captured in a CUDA graph):
//   y[b, n] (+)= scale[b] * (sum_k W_b[n, k] x[b, k] + bias_b[n])
// W_b = W + expert[b] * w_expert_stride (W [N, K] dtype t, row stride K), bias_b = bias + expert[b] *
// bias_expert_stride (fp32, optional); x [B, K] dtype t (row stride ldx); y dtype `out` (t or F32, row stride ldy);
// scale fp32 [B] optional; accumulate adds into y (the residual add for an fp32 y).
#pragma once
#include <cstdint>

#include "core/model_config.h"
#include "kernels/device.h"
#include "kernels/variants.h"

namespace bmh::cuda {
constexpr int kGemvMaxRows = 8;  // rows (B) the decode GEMV kernels take
struct GemvArgs {
  int B, N, K;
  const void* W; int64_t w_expert_stride = 0;
  const int* expert = nullptr;
  const void* x; int ldx;
  const float* bias = nullptr; int64_t bias_expert_stride = 0;
  const float* scale = nullptr;
  bool accumulate = false;
  void* y; int ldy;
};
// Runs the process-wide variant (kernel_variants().gemv).
void gemv(Dt t, Dt out, const GemvArgs& a, cudaStream_t s);
void gemv(Dt t, Dt out, const GemvArgs& a, GemvVariant v, cudaStream_t s);
// The versions: one warp per row (gemv.cu); lanes / warps per row fitted to the shape (gemv_split.cu); all rows
// b in one pass over the weights (gemv_rows.cu, batched decoding; one row runs gemv_split).
void gemv_warp(Dt t, Dt out, const GemvArgs& a, cudaStream_t s);
void gemv_split(Dt t, Dt out, const GemvArgs& a, cudaStream_t s);
void gemv_rows(Dt t, Dt out, const GemvArgs& a, cudaStream_t s);
// ... and the tensor-core version for 2..8 rows sharing bf16/fp16 weights (gemv_mma.cu; the rest runs gemv_rows).
void gemv_mma(Dt t, Dt out, const GemvArgs& a, cudaStream_t s);
// One row, all of a lane's loads of a round in flight (gemv_stream.cu; GemvVariant::Stream runs it where
// gemv_stream_fits, and gemv_mma otherwise): B = 1, K a multiple of 16 bytes and at least 128 such vectors (shorter
// rows fit version 2's lanes per row), K * dtype bytes <= 200 KiB, W and x 16-byte aligned. Fails by name on any
// other shape.
bool gemv_stream_fits(Dt t, const GemvArgs& a);
void gemv_stream(Dt t, Dt out, const GemvArgs& a, cudaStream_t s);

// Per-row experts for any number of rows (batched decoding of MoE blocks above kGemvMaxRows; gemv_grouped.cu), all
// on the device: group_rows_by_expert writes offsets [E + 1] and rows [B] (expert e's rows, in row order, are
// rows[offsets[e] .. offsets[e + 1])); gemv_grouped then reads each expert's weights once for all of its rows
// (tensor cores for bf16/fp16 where gemv_grouped_fits; otherwise gemv_warp, which reads them once per row).
// a.expert must be set; offsets / rows must come from group_rows_by_expert on the same a.expert.
void group_rows_by_expert(const int* expert, int B, int E, int* offsets, int* rows, cudaStream_t s);
bool gemv_grouped_fits(Dt t, const GemvArgs& a);
void gemv_grouped(Dt t, Dt out, const GemvArgs& a, int E, const int* offsets, const int* rows, cudaStream_t s);

// The pre-norm folded into the GEMV's input (gemv_norm.cu): x[b] = norm(residual[b]) w (+ b) rounded to dtype t, as
// add_norm (norm.cuh) writes it with no delta, then y as gemv. a.x / a.ldx are ignored; K = d. B * d * dtype bytes
// must fit in 200 KiB of shared memory.
struct NormIn {
  NormKind kind = NormKind::RMSNorm;
  const float* residual = nullptr; int ldr = 0;  // [B, d] fp32
  const float* w = nullptr;                      // [d]
  const float* b = nullptr;                      // [d] or null
  float eps = 1e-5f;
};
void gemv_norm(Dt t, Dt out, const GemvArgs& a, const NormIn& n, cudaStream_t s);
// The same for one row through gemv_stream (a.x ignored; gemv_stream_fits with a.x = nullptr must hold).
void gemv_stream_norm(Dt t, Dt out, const GemvArgs& a, const NormIn& n, cudaStream_t s);
}

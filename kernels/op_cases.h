// One table of kernel cases shared by the GPU correctness test (tests/gpu/test_ops.cpp, each case against
// reference/ops.h on fresh random inputs) and the kernel benchmark (bmh bench-kernels), as ggml's
// test-backend-ops does. Odd sizes on purpose (partial tiles, strides, chunk boundaries); `perf` cases are the
// model-sized ones the benchmark times (the test checks them too in bf16, where the CPU reference stays cheap
// enough, and skips the rest).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/model_config.h"
#include "kernels/device.h"

namespace bmh::cuda {

enum class OpKind {
  Linear,        // y [M, N] = x [M, K] W^T (out dtype, or fp32 accumulate: y = y0 + x W^T)
  AddNorm,       // residual (+= delta); y = norm(residual) w (+ b)
  MlpAct,        // act(h[:F] + b) (* (h[F:] + b))
  Conv1d,        // causal depthwise conv1d + SiLU over B x T with history state
  Conv1dUpdate,  // the same for one token
  Scan,          // selective scan with initial state, returns the last state
  StateUpdate,   // one-token selective state update
  Gemv,          // decode GEMV with optional per-row expert, scale, accumulate
  MoeRoute,      // router_top1 + permute + unpermute-add
  Rotary,        // rotary on q, k in place + KV cache write
  Softmax,       // causal softmax of scores
  AttnDecode,    // one query per (b, h) over the KV cache
  LogSoftmax,    // fused log-softmax + gather + argmax
  Embedding,     // gather rows into the fp32 residual
  AttnPrefill,   // causal self-attention of B x T tokens from the fused qkv (variants: cuBLAS + softmax, flash)
  NormGemv,      // decode pre-norm then GEMV: variant 0 add_norm + gemv (two kernels), 1 gemv_norm (fused)
  RouterTopK,    // router_topk (kernels/router.cuh): N = 0 sigmoid top-1 / 1 softmax top-K; flag: renormalise;
                 // dt F32 = exact routing, BF16/FP16 = --router-precision model in that type; exact ties planted
  AttnGqa,       // gqa_rotary_split + gqa_attention_decode: H query heads over K key/value heads, rd rotary dims
};
const char* to_string(OpKind k);
// A Gemv case's variant that runs group_rows_by_expert + gemv_grouped (per-row experts, any row count) instead of
// one of the GemvVariant versions.
constexpr int kGemvGroupedCase = 5;  // past GemvVariant's values

struct OpCase {
  OpKind op;
  Dt dt = Dt::F32;
  int B = 1, T = 1;              // sequences x tokens; rows R = B*T
  int M = 0, N = 0, K = 0;       // Linear/Gemv: x [M or B, K], W [N, K]; Conv: Di = N, taps K, xz row stride
                                 // 2 N + M; Scan: Di = N, d_state K;
                                 // AttnDecode: K > 0 attends to positions 0..K-1 only; AttnPrefill: K > 0
                                 // key/value heads, grouped-query qkv rows [q heads | k heads | v heads]
  int E = 0;                     // experts (Gemv, MoeRoute); Scan: lanes per channel of the chunked scan (0 = auto)
  int H = 0, hd = 0, rd = 0, S = 0;  // heads, head_dim, rotary dims, key positions (Softmax/AttnDecode/Rotary cache)
  int V = 0;                     // vocabulary (LogSoftmax, Embedding)
  bool flag = false;             // Linear: fp32 accumulate; AddNorm: with delta; MlpAct: gated; Scan: with z;
                                 // Gemv: experts+scale+accumulate into fp32; MoeRoute: forced routes
  bool bias = false;
  NormKind norm = NormKind::RMSNorm;
  Activation act = Activation::GeluErf;
  int variant = 0;               // kernel version (Gemv: GemvVariant or kGemvGroupedCase; (kernels/variants.h: Scan-, AttnDecode-, AttnPrefillVariant;
                                 // StateUpdate: DecodeDtVariant + 2 * StateUpdateVariant (bit 0: fused =
                                 // dt_proj [N, M] inside; bit 1: the tile kernel); AddNorm,
                                 // Conv1d: 1 = the scalar kernel where the 16-byte one applies); 0 = first
  bool perf = false;             // model-sized
  std::string name() const;      // "linear_bf16_M129_N250_K96_acc"; a variant other than 0 adds "_<its name>"
  int rows() const { return B * T; }
};

std::vector<OpCase> op_cases();

// Host data of one case: named float inputs (already rounded to the case dtype where the kernel reads that dtype)
// and int inputs; run_op fills the named outputs (converted to float) after poisoning them with NaN on the device.
struct OpData {
  std::map<std::string, std::vector<float>> in, out;
  std::map<std::string, std::vector<int64_t>> ints, out_ints;
};
OpData make_op_inputs(const OpCase& c, uint64_t seed);
// Cases with the same key draw the same inputs from make_op_inputs: the name with the kernel version and the lane
// count taken out where the inputs do not depend on them (Scan: variant, E; Conv1d, AddNorm: variant).
std::string op_inputs_key(const OpCase& c);
void run_op(const OpCase& c, OpData& d);

// Benchmark: median ms of `iters` timed runs (device events) after warm-up, rotating among several input sets when
// the working set would fit in L2; bytes and flops moved by one run (the floor's inputs).
struct OpTiming { double ms = 0, bytes = 0, flops = 0; };
OpTiming time_op(const OpCase& c, int iters);

}  // namespace bmh::cuda

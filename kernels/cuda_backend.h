// The CUDA LanguageModel (see cuda_model.h). Residual stream fp32; activations in the compute dtype; GEMMs through
// cuBLAS with fp32 accumulation; the mixer/MLP output GEMMs add into the fp32 residual (beta = 1).
// Prefill (forward, score, decoder prefill) runs B*T rows through cuBLAS; decode steps run B rows through GEMV
// kernels with no host sync (MoE expert picked on the device), captured once into a CUDA graph and replayed.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/language_model.h"
#include "kernels/cuda_weights.h"
#include "kernels/gemm.h"
#include "kernels/op_timer.h"

namespace bmh::cuda {

// Device pointers of one sequence batch's recurrent state (null entries for blocks without that mixer).
struct StatePtrs {
  std::vector<float*> conv;   // per block [B, K-1, Di]
  std::vector<float*> ssm;    // per block [B, Di, N]
  std::vector<void*> k, v;    // per block [B, Hkv, S_max, hd]
  int S_max = 0;
};

// Copies sequence `from_row` of `from` over sequence `to_row` of `to` (conv and SSM state of every Mamba block;
// kernels/cuda_slot_state.cpp): continuous batching's per-slot prefill.
void copy_mamba_state_row(const ModelConfig& cfg, const StatePtrs& from, int from_row, const StatePtrs& to, int to_row,
                          cudaStream_t s);

// Owned recurrent state for `batch` sequences.
struct DecodeState {
  std::vector<DeviceBuffer> bufs;
  std::vector<uint8_t> is_kv;  // per buffer: a key or value cache (written at a position before any read of it)
  StatePtrs ptrs;
  void allocate(const ModelConfig& cfg, Dt dt, int batch, int S_max, const std::string& what);
  void zero(cudaStream_t s);
  // Zeroes the Mamba conv and SSM states only: a prefill from position 0 writes every cache position it reads, so
  // zeroing the KV caches (3.2 GB for pythia-1.4b at 8 x 2048) would only cost time.
  void zero_recurrent(cudaStream_t s);
};

// What a prefill records besides the final normalized hidden rows.
struct PrefillTrace {
  std::vector<RouteRecord>* routes = nullptr;           // filled per MoE block when non-null
  std::vector<Tensor>* hidden = nullptr;                // fixture convention (reference/model.cpp) when non-null
  const std::vector<const int64_t*>* forced = nullptr;  // per MoE block (in order): device [B*T*k] ids or null
  const RouterPrecision* precision = nullptr;           // null: the model's --router-precision
};

// Router arithmetic for a run in `dt` under `p` (kernels/router.cuh): 0 exact, 1 bf16, 2 fp16.
int router_half_mode(const RouterPrecision& p, Dt dt);
// Fails naming the block when a NaN-router flag (kernels/router.cuh, tag = block + 1) is set.
void check_router_nan_flag(int flag, const std::string& where);
// Mixtral's sliding window binds once a query sits `window` or more positions after a key: the CUDA kernels keep
// every key, so such a run is refused by name.
void check_sliding_window(const ModelConfig& cfg, int64_t positions, const std::string& where);

class CudaModel final : public LanguageModel {
 public:
  CudaModel(const ModelConfig& cfg, const TensorMap& canonical, Dt dt);
  ~CudaModel() override;
  const ModelConfig& config() const override { return cfg_; }
  std::string describe() const override;
  ForwardOutput forward(const Tensor& ids, const ForwardOptions& opt = {}) override;
  std::unique_ptr<Decoder> decoder(int batch) override;
  // 8 (the decode GEMV's rows, whose per-row expert serves top-k MoE without a host sync) for models with MoE
  // blocks; 256 otherwise (above 8 rows the decoder's projections run through cuBLAS).
  int max_decode_batch() const override;
  std::vector<ScoreResult> score(const std::vector<ScoreRequest>& requests) override;
  // Batched scoring (cuda_score.cpp): requests sorted by length, right-padded, several per forward; with
  // opt.deterministic, score() (one request per forward).
  std::vector<ScoreResult> score_groups(const std::vector<ScoreGroup>& g, const ScoreBatchOptions& o) override;
  bool batch_invariant() const override { return true; }  // score() runs one request per forward: fixed shapes

  // Runs B sequences of T tokens (ids on the device) from the states in `st` (which must be zeroed for a fresh
  // start; they hold the last states on return) and leaves the final-normed hidden rows [B*T, d] in final_hidden().
  void prefill_rows(const int64_t* ids_dev, int B, int T, const StatePtrs& st, const PrefillTrace& trace);
  // logits [M, V] fp32 = final_hidden rows (row stride ldx elements, starting at row0) through the LM head.
  void lm_head_rows(const void* x, int ldx, int M, float* logits, cudaStream_t s);
  // forward() without the host copies of logits: for benchmarks. Returns when the device is done.
  void forward_device(const Tensor& ids);

  Dt dt() const { return w_.dt; }
  const DevWeights& weights() const { return w_; }
  const Blas& blas() const { return *blas_; }
  cudaStream_t stream() const { return stream_; }
  void* final_hidden() const { return ws_xn_.get(); }
  // Per-op GPU times of the prefills run while a timer is attached (null detaches); the caller owns the timer.
  void set_op_timer(OpTimer* t) { timer_ = t; }
  // Per-op GPU times of one decode step of a fresh decoder for prompt's B rows (prompt [B, T] ids), after its
  // prefill and one graph step: the step's kernels run once outside the graph with events between ops.
  std::vector<OpTimer::Row> decode_breakdown(const Tensor& prompt);

 private:
  void ensure_workspace(int B, int T);
  // B x T host ids from a zero state through the scratch state (forward, forward_device, score, batched scoring).
  void prefill_from_host(const int64_t* ids_host, int B, int T, const PrefillTrace& trace, const char* what);
  void mamba_prefill(int i, int B, int T, const void* xn, float* conv_state, float* ssm_state);
  void attention_prefill(int i, int B, int T, const void* xn, void* kc, void* vc, int S_max);
  bool use_flash_prefill(const AttentionSpec& a, int T) const;
  void mlp_prefill(int i, int R, const void* xn);
  void moe_prefill(int i, int R, const void* xn, const int64_t* forced, int half, RouteRecord* rec);
  // The experts' fc1 -> activation -> fc2 chains (rows off[e]..off[e+1] of the permuted tokens) into the fp32
  // expert outputs, serially on stream_ or spread over the side streams (kernel_variants().moe_prefill).
  void moe_experts(int i, const std::vector<int>& off);
  void ensure_side_streams();
  void tick(const char* op) {
    if (timer_) timer_->mark(op);
  }

  ModelConfig cfg_;
  DevWeights w_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<Blas> blas_;
  int ws_rows_ = 0, ws_T_ = 0, ws_B_ = 0;
  // Prefill workspace (grown on demand).
  DeviceBuffer ws_resid_, ws_xn_, ws_xn2_, ws_a_, ws_b_, ws_c_, ws_d_, ws_e_, ws_f32_, ws_f32b_;
  DeviceBuffer ws_ids_, ws_int_, ws_logits_, ws_forced_;
  DeviceBuffer ws_flag_;  // NaN-router flag (kernels/router.cuh), read with each MoE layer's offsets
  DecodeState scratch_state_;
  int scratch_B_ = 0, scratch_T_ = 0;
  OpTimer* timer_ = nullptr;
  // MoE prefill's side streams, each with its own cuBLAS handle (a handle's workspace must not be shared by
  // kernels running at once), and the fork/join events.
  std::vector<cudaStream_t> side_;
  std::vector<std::unique_ptr<Blas>> side_blas_;
  std::vector<cudaEvent_t> side_done_;
  cudaEvent_t fork_ = nullptr;
};

}  // namespace bmh::cuda

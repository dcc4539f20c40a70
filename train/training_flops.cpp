#include "train/training_flops.h"

#include "core/flops.h"

namespace bmh::train {

double forward_flops_per_token(const ModelConfig& cfg, int64_t seq_len) {
  return flops_sequence(cfg, seq_len).flops() / double(seq_len);
}

double training_flops_per_token(const ModelConfig& cfg, int64_t seq_len) {
  return 3 * forward_flops_per_token(cfg, seq_len);
}

int64_t active_non_embedding_params(const ModelConfig& cfg) {
  const ParamBreakdown p = param_breakdown(cfg);
  return p.active - p.embedding - p.head;
}

double zyphra_mamba1_flops_per_token(const MambaSpec& m, int d_model) {
  const double Di = m.d_inner, N = m.d_state, R = m.dt_rank, K = m.d_conv, d = d_model;
  return Di * (11 * N + 4 * R + 1) + 6 * Di * d + 2 * Di * K;
}

}  // namespace bmh::train

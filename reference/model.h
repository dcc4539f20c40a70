// The reference model: one forward path for every ModelConfig (a list of blocks), in fp32 or fp64.
// Decoding is the same code run one token at a time from the carried state, so the recurrent and the full
// forward agree by construction up to rounding.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/language_model.h"
#include "core/model_config.h"
#include "core/tensor.h"
#include "reference/ops.h"

namespace bmh::ref {

template <class T> struct BlockWeights {
  Vec<T> norm_w, norm_b, mlp_norm_w, mlp_norm_b;
  MambaWeights<T> mamba;
  AttentionWeights<T> attn;
  MlpWeights<T> mlp;
  MoeWeights<T> moe;
};

// Per-sequence recurrent state: Mamba conv/SSM state and attention KV cache per block.
template <class T> struct SequenceState {
  std::vector<MambaState<T>> mamba;
  std::vector<KvCache<T>> kv;
  int64_t position = 0;
};

// What one sequence's run records besides logits.
struct SequenceTrace {
  std::vector<MoeRoutes> routes;                 // one per MoE block, in block order
  std::vector<std::vector<double>> hidden;       // [L+1] each [T*d], fixture convention (see model.cpp)
  bool want_hidden = false;
};

template <class T> class RefModel final : public LanguageModel {
 public:
  RefModel(ModelConfig cfg, const TensorMap& canonical);
  const ModelConfig& config() const override { return cfg_; }
  std::string describe() const override;
  ForwardOutput forward(const Tensor& ids, const ForwardOptions& opt = {}) override;
  std::unique_ptr<Decoder> decoder(int batch) override;

  SequenceState<T> new_state() const;
  // Runs tokens from `state` (advancing it) and returns logits [n, V]. `forced` holds, per MoE block in
  // order, the experts to use for these tokens, k per token (empty = router's choice); `precision` null = the
  // model's own --router-precision.
  Mat<T> run(const std::vector<int64_t>& tokens, SequenceState<T>& state, SequenceTrace* trace,
             const std::vector<std::vector<int64_t>>* forced = nullptr,
             const RouterPrecision* precision = nullptr) const;
  // The weights as loaded, for the training path (reference/backward_model.cpp).
  const Mat<T>& embed() const { return embed_; }
  const Mat<T>& lm_head() const { return lm_head_; }   // empty when tied
  const Vec<T>& lm_head_b() const { return lm_head_b_; }
  const Vec<T>& final_norm_w() const { return final_norm_w_; }
  const Vec<T>& final_norm_b() const { return final_norm_b_; }
  const std::vector<BlockWeights<T>>& blocks() const { return blocks_; }

 private:
  ModelConfig cfg_;
  Mat<T> embed_, lm_head_;
  Vec<T> lm_head_b_, final_norm_w_, final_norm_b_;
  std::vector<BlockWeights<T>> blocks_;
};

// dtype: "fp32" or "fp64".
std::unique_ptr<LanguageModel> make_reference_model(const ModelConfig& cfg, const TensorMap& canonical,
                                                    const std::string& dtype);

}  // namespace bmh::ref

// The one interface through which evals/ and experiments/ run a model, whatever the backend.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/model_config.h"
#include "core/router.h"
#include "core/tensor.h"

namespace bmh {

// Routing of one MoE block over a [B, T] batch (row-major b*T + t), k slots per token (slot-major last:
// index (b*T + t)*k + j). Files name them route.{i}.expert/.prob [B,T] for top-1 (Zyphra's fixture names) and
// route.{i}.expert/.weight [B,T,k] for top-k (experiments/route_io.h).
struct RouteRecord {
  int block = 0;                      // index in the family's layer list
  int n_experts = 0;
  int top_k = 1;
  std::vector<int64_t> expert;        // [B*T*k] chosen experts, in descending gate order
  std::vector<float> prob;            // [B*T*k] their gate weights (Zyphra: the sigmoid that scales the output)
  std::vector<float> router_logits;   // [B*T*E]
  std::vector<uint8_t> tie;           // [B*T] 1 where equal gate values were resolved by index (core/router.h)
};

struct ForwardOptions {
  bool hidden_states = false;         // fill ForwardOutput::hidden_states as the fixtures define them
  // Forced routes: block index -> [B*T*k] expert ids; the gate value is still the router's for that expert.
  const std::vector<std::pair<int, std::vector<int64_t>>>* force_routes = nullptr;
  // Router precision for this call; null = the model's own (LanguageModel::router_precision).
  const RouterPrecision* router_precision = nullptr;
};

struct ForwardOutput {
  Tensor logits;                      // F32 [B, T, V]
  std::vector<RouteRecord> routes;    // one per MoE block, in block order
  std::vector<Tensor> hidden_states;  // F32 [B, T, d] each, when asked
};

// Score tokens[n - n_continuation .. n-1], each given all tokens before it (lm-eval loglikelihood).
struct ScoreRequest {
  std::vector<int32_t> tokens;
  int n_continuation = 0;
};
struct ScoreResult {
  double logprob = 0;                 // sum of log-softmax over the full vocabulary
  bool is_greedy = true;              // every continuation token is the argmax
};

// Recurrent decoding: conv + SSM state per Mamba block, KV cache per attention block.
class Decoder {
 public:
  virtual ~Decoder() = default;
  // Runs the prompts ids [B, T] (int64) and returns the logits of their last position, F32 [B, V].
  virtual Tensor prefill(const Tensor& ids) = 0;
  // Feeds one token per sequence and returns the next logits, F32 [B, V].
  virtual Tensor step(const std::vector<int64_t>& tokens) = 0;
};

class LanguageModel {
 public:
  virtual ~LanguageModel() = default;
  virtual const ModelConfig& config() const = 0;
  virtual std::string describe() const = 0;   // "cpu fp32", "cuda bf16"
  // ids: int64 [B, T]. Errors name any id outside the vocabulary.
  virtual ForwardOutput forward(const Tensor& ids, const ForwardOptions& opt = {}) = 0;
  virtual std::unique_ptr<Decoder> decoder(int batch) = 0;
  // Default: right-padded batches through forward() (causal models: padding after a sequence cannot change
  // it). Backends override with fused log-softmax kernels.
  virtual std::vector<ScoreResult> score(const std::vector<ScoreRequest>& requests);

  // --router-precision for every later forward, decoder and score call.
  void set_router_precision(const RouterPrecision& p) { router_precision_ = p; }
  const RouterPrecision& router_precision() const { return router_precision_; }

 protected:
  RouterPrecision router_precision_;
};

// Greedy decoding through the recurrent path: returns generated_ids int64 [B, T+n] and, if asked,
// generated_logits F32 [B, n, V] (the logits each new token was chosen from).
Tensor generate_greedy(LanguageModel& model, const Tensor& ids, int n_new, Tensor* generated_logits = nullptr);

// Checks ids are int64 [B, T] within [0, vocab); names the offending position and value.
void check_input_ids(const Tensor& ids, int vocab_size, const std::string& what);

}  // namespace bmh

// The one interface through which evals/ and experiments/ run a model, whatever the backend.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/model_config.h"
#include "core/tensor.h"

namespace bmh {

// Routing of one MoE block over a [B, T] batch (row-major b*T + t).
struct RouteRecord {
  int block = 0;                      // index in the family's layer list
  int n_experts = 0;
  std::vector<int64_t> expert;        // [B*T] chosen expert (top-1; first of top-k)
  std::vector<float> prob;            // [B*T] its gate value (Zyphra: the sigmoid that scales the output)
  std::vector<float> router_logits;   // [B*T*E]
};

struct ForwardOptions {
  bool hidden_states = false;         // fill ForwardOutput::hidden_states as the fixtures define them
  // Forced routes: block index -> [B*T] expert ids; the gate value is still the router's for that expert.
  const std::vector<std::pair<int, std::vector<int64_t>>>* force_routes = nullptr;
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
};

// Greedy decoding through the recurrent path: returns generated_ids int64 [B, T+n] and, if asked,
// generated_logits F32 [B, n, V] (the logits each new token was chosen from).
Tensor generate_greedy(LanguageModel& model, const Tensor& ids, int n_new, Tensor* generated_logits = nullptr);

// Bounds a request before anything is sized from it: attention models cannot run past max_seq_len positions,
// and the float logits kept ([B, T, V] for forward, [B, n_new, V] for generate) stay under 8 GiB.
// `what` names the input in errors.
void check_sequence_bounds(const ModelConfig& cfg, int64_t B, int64_t T, int64_t n_new, const std::string& what);

// Checks ids are int64 [B, T] within [0, vocab); names the offending position and value.
void check_input_ids(const Tensor& ids, int vocab_size, const std::string& what);

}  // namespace bmh

// The one interface through which evals/ and experiments/ run a model, whatever the backend.
#pragma once
#include <cstdint>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
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

// Requests whose first `prefix` tokens are the same (evals/ groups them by longest common token prefix). A backend
// may run those tokens once, keep the state they leave (conv window + SSM state per Mamba block, KV cache per
// attention block) and their last position's logits (which score the first continuation token), and run each
// request's remainder from a copy of that state. 0 <= prefix <= tokens.size() - n_continuation for every request:
// the prefix never covers a scored position but its own last. prefix 0: each request is scored whole.
struct ScoreGroup {
  int prefix = 0;
  std::vector<ScoreRequest> requests;
};
struct ScoreBatchOptions {
  // Per-request results bit-identical whatever the grouping and batching (fixed reduction order per token); a
  // backend whose batch_invariant() is false refuses it.
  bool deterministic = false;
};

// Recurrent decoding: conv + SSM state per Mamba block, KV cache per attention block.
class Decoder {
 public:
  virtual ~Decoder() = default;
  // Runs the prompts ids [B, T] (int64) and returns the logits of their last position, F32 [B, V].
  virtual Tensor prefill(const Tensor& ids) = 0;
  // Feeds one token per sequence and returns the next logits, F32 [B, V].
  virtual Tensor step(const std::vector<int64_t>& tokens) = 0;

  // Per-slot use, for continuous batching (core/batched_generate.h): each of the B slots holds one sequence's
  // state independently of the others. A backend that supports it returns true; the others keep the defaults,
  // which refuse.
  virtual bool per_slot() const { return false; }
  // Discards slot `slot`'s state and runs one prompt (int64 [1, T], T >= 1) into it from a fresh state; returns
  // the logits of its last position, F32 [1, V]. The other slots are untouched.
  virtual Tensor prefill_slot(int slot, const Tensor& ids);
  // Feeds tokens[b] to every slot b with active[b] != 0 (each at its own position); returns F32 [B, V] whose rows
  // of active slots are their next logits (other rows are zero). Inactive slots are untouched.
  virtual Tensor step_slots(const std::vector<int64_t>& tokens, const std::vector<uint8_t>& active);

  // Greedy decoding without moving the logits: as step() / step_slots(), but returns each row's next token, the
  // first maximum of its logits (core/sampling.h's greedy rule; inactive slots get -1). The defaults take the
  // argmax of step()'s logits on the host; a backend computes it where the logits are and moves only the ids (as
  // mamba_ssm's generate(cg=True) keeps its sampling on the GPU).
  virtual std::vector<int64_t> step_greedy(const std::vector<int64_t>& tokens);
  virtual std::vector<int64_t> step_slots_greedy(const std::vector<int64_t>& tokens, const std::vector<uint8_t>& active);
};

// The first maximum of each row of F32 logits [B, V] (std::max_element: core/sampling.cpp's greedy rule).
std::vector<int64_t> argmax_rows(const Tensor& logits);

class LanguageModel {
 public:
  virtual ~LanguageModel() = default;
  virtual const ModelConfig& config() const = 0;
  virtual std::string describe() const = 0;   // "cpu fp32", "cuda bf16"
  // ids: int64 [B, T]. Errors name any id outside the vocabulary.
  virtual ForwardOutput forward(const Tensor& ids, const ForwardOptions& opt = {}) = 0;
  virtual std::unique_ptr<Decoder> decoder(int batch) = 0;
  // The largest batch decoder() accepts.
  virtual int max_decode_batch() const { return 256; }
  // Default: right-padded batches through forward() (causal models: padding after a sequence cannot change
  // it). Backends override with fused log-softmax kernels.
  virtual std::vector<ScoreResult> score(const std::vector<ScoreRequest>& requests);
  // One model call over groups of requests (evals/ keeps its computed tokens, shared prefixes counted once, within
  // --token-budget); results flattened group by group, request by request. A backend packs the sequences back to
  // back with no padding and runs each shared prefix once. Default: every group's requests through score(), the
  // prefix ignored.
  virtual std::vector<ScoreResult> score_groups(const std::vector<ScoreGroup>& groups, const ScoreBatchOptions& opt);
  // Whether score_groups() honours ScoreBatchOptions::deterministic.
  virtual bool batch_invariant() const { return false; }

  // --router-precision for every later forward, decoder and score call.
  void set_router_precision(const RouterPrecision& p) { router_precision_ = p; }
  const RouterPrecision& router_precision() const { return router_precision_; }

 protected:
  RouterPrecision router_precision_;
};

// Checks a group (request shapes, ids within the vocabulary, the prefix bounds and that every request starts with
// the same prefix tokens); names the group's request and the offending value.
void check_score_group(const ScoreGroup& g, int vocab_size);
// log-softmax of one logits row at `target` (lm-eval's F.log_softmax then gather) and whether target is the row's
// first maximum (torch argmax). The exponentials run in the logits' own precision, as F.log_softmax does with
// lm-eval's default softmax_dtype; they are summed in double.
template <class F> std::pair<double, bool> log_softmax_at(const F* row, int64_t V, int64_t target) {
  F mx = row[0];
  int64_t arg = 0;
  for (int64_t v = 1; v < V; ++v)
    if (row[v] > mx) { mx = row[v]; arg = v; }
  double se = 0;
  for (int64_t v = 0; v < V; ++v) se += double(std::exp(row[v] - mx));
  return {double(row[target]) - double(mx) - std::log(se), arg == target};
}

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

// Expert-routing statistics of an MoE model, from the RouteRecords of its forward passes
// (core/language_model.h): per MoE layer, tokens per expert, load imbalance, entropy, gate values and margins,
// cross-layer transitions, same-expert runs, top tokens per expert, and breakdowns by position and by source.
//
// Top-k layers count k slots per token: an "assignment" is one (token, slot); n_e counts assignments.
// Definitions (E experts, n_e assignments to expert e, n = sum n_e = k * tokens, f_e = n_e / n):
//   cv             = std(n_e) / mean(n_e), population std over the E experts (0 = perfectly balanced)
//   max_over_mean  = max(n_e) / mean(n_e)  (1 = balanced, E = everything on one expert)
//   entropy        = -sum f_e ln f_e / ln E  (normalized to [0, 1]; 1 = uniform)
//   gate           = the RouteRecord's prob: the value that scales the chosen expert's output (one per slot)
//   margin         = min over chosen p(e) - max over unchosen p(e), per token, p = sigmoid (SigmoidTop1) or softmax
//                    (SoftmaxTopK) of the router logits; >= 0 whenever the router chose (negative only when forced)
//   ties           = tokens whose choice broke a tie of equal gate values by index (RouteRecord::tie)
//   transition     = P(expert j at the next MoE layer | expert i here), same token, every slot pair counted;
//                    rows with no tokens are 0
//   transition_mi  = mutual information (bits) between the two layers' experts under the empirical joint
//   same_expert    = over adjacent pairs (t, t+1) within a sequence, the mean fraction of t's k experts that t+1
//                    also uses (top-1: the fraction routed to the same expert);
//   same_chance    = k sum f_e^2, what independent draws at the layer's frequencies would give (exact for k = 1;
//                    for k > 1 it takes P(e among a token's k) = k f_e)
//   top_tokens     = the most frequent token ids per expert (ties: smaller id first)
//   specific_tokens= per expert, tokens seen at least `min_specific_count` times in the layer, ranked by the
//                    share of their occurrences that go to this expert (ties: more occurrences first)
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/language_model.h"
#include "core/model_config.h"
#include "evals/h5_writer.h"

namespace bmh {

struct RoutingOptions {
  int gate_bins = 20;                   // histogram of the gate value over [0, 1]
  int margin_bins = 20;                 // histogram of the margin over [0, 1] (negative margins counted apart)
  int top_tokens = 10;
  int min_specific_count = 5;
  std::vector<int64_t> position_edges;  // bucket starts (first 0); empty = 0, 1, 2, 4, 8, ... up to 2^20
};

struct TokenCount {
  int64_t token = 0;
  int64_t count = 0;      // tokens of this id routed to the expert
  int64_t total = 0;      // tokens of this id in the layer
};

struct LayerRouting {
  int block = 0;                           // index in the family's layer list
  int n_experts = 0;
  int top_k = 1;
  int64_t tokens = 0;
  int64_t assignments = 0;                 // tokens * top_k
  int64_t ties = 0;                        // tokens whose choice broke a tie by index
  std::vector<int64_t> counts;             // [E] assignments
  std::vector<double> fraction;            // [E]
  double cv = 0, max_over_mean = 0, entropy = 0;
  double gate_mean = 0;
  std::vector<int64_t> gate_hist;          // [gate_bins] over [0, 1]
  double margin_mean = 0;
  std::vector<int64_t> margin_hist;        // [margin_bins] over [0, 1]
  int64_t margin_negative = 0;
  int64_t adjacent_pairs = 0;
  double same_expert = 0, same_chance = 0;
  std::vector<std::vector<TokenCount>> top_tokens;       // [E][<= top_tokens]
  std::vector<std::vector<TokenCount>> specific_tokens;  // [E][<= top_tokens]
  std::vector<int64_t> position_counts;    // [P, E] row-major, P = position buckets
  std::vector<int64_t> source_counts;      // [S, E] row-major, S = sources in first-seen order
  std::vector<double> source_cv, source_entropy;  // [S]
};

struct LayerTransition {
  int from_block = 0, to_block = 0;
  int from_experts = 0, to_experts = 0;
  std::vector<int64_t> counts;             // [Ef, Et]
  std::vector<double> prob;                // [Ef, Et], rows sum to 1 (or 0 for unused experts)
  double mutual_information = 0;           // bits
};

struct RoutingStats {
  std::vector<LayerRouting> layers;        // MoE layers in block order
  std::vector<LayerTransition> transitions;  // layers[i] -> layers[i+1]
  std::vector<int64_t> position_edges;     // [P] bucket starts
  std::vector<std::string> sources;        // [S]
  int64_t sequences = 0;
  RoutingOptions options;
};

class RoutingAccumulator {
 public:
  explicit RoutingAccumulator(const ModelConfig& cfg, RoutingOptions opt = {});
  // One forward pass over ids int64 [B, T] and its routes (one per MoE block, block order). `lengths` [B]
  // (optional) marks right-padding: positions >= lengths[b] are ignored. `source` labels the text source/task.
  void add(const std::vector<RouteRecord>& routes, const Tensor& ids, const std::string& source,
           const std::vector<int>* lengths = nullptr);
  RoutingStats finish() const;

 private:
  struct Layer {
    int block = 0, n_experts = 0;
    RouterKind router = RouterKind::SigmoidTop1;
    int top_k = 1;
    int64_t ties = 0, same_slots = 0;
    std::vector<int64_t> counts;
    double gate_sum = 0, margin_sum = 0;
    std::vector<int64_t> gate_hist, margin_hist;
    int64_t margin_negative = 0, pairs = 0;
    std::map<int64_t, std::vector<int64_t>> token_counts;  // token -> [E]
    std::vector<int64_t> position_counts;                  // [P, E]
    std::map<int, std::vector<int64_t>> source_counts;     // source index -> [E]
  };
  ModelConfig cfg_;
  RoutingOptions opt_;
  std::vector<Layer> layers_;
  std::vector<std::vector<int64_t>> transitions_;  // [L-1][Ef*Et]
  std::vector<std::string> sources_;
  int64_t sequences_ = 0;
};

// Imbalance measures of one count vector (exposed for tests and the position/source breakdowns).
double load_cv(const std::vector<int64_t>& counts);
double load_max_over_mean(const std::vector<int64_t>& counts);
double normalized_entropy(const std::vector<int64_t>& counts);

// Writes every array with self-describing attributes under `g`; `decode` turns a token id into text.
void write_routing_h5(const RoutingStats& s, h5::Group g, const std::function<std::string(int64_t)>& decode);
// Per-layer scalars and the top tokens (decoded), for results.json and the summary table.
nlohmann::json routing_summary_json(const RoutingStats& s, const std::function<std::string(int64_t)>& decode);

}  // namespace bmh

// How score requests become model calls (LanguageModel::score_groups):
//   1. group requests by their longest common token prefix (sorted by tokens, neighbours share the most): a group
//      keeps a prefix as long as each member's scored positions allow (prefix <= n - n_continuation) and grows
//      while that saves tokens ((m+1)·P' >= m·P). The tokens are those after lm-eval's left truncation to
//      max_length (HFLM._loglikelihood_tokens), so a truncated request, whose window starts elsewhere than its
//      siblings', shares nothing and is scored whole. Multiple-choice tasks whose choices follow one context_enc
//      (lm_eval/api/model.py TemplateLM._encode_pair: HellaSwag, ARC, PIQA, OpenBookQA) share that context;
//      WinoGrande's two contexts share the sentence up to the blank.
//   2. a group is split where it would exceed the token budget (each part reruns the prefix);
//   3. groups, longest first (lm-eval's _collate order), fill calls of at most `token_budget` computed tokens
//      (a request alone longer than the budget gets a call of its own).
// A group costs prefix + sum(n_i - 1 - prefix) tokens: the model sees tokens[:-1] of each request.
#pragma once
#include <cstdint>
#include <vector>

#include "core/language_model.h"

namespace bmh::eval {

struct PlanOptions {
  int64_t token_budget = 4096;  // computed tokens per model call
  bool share_prefixes = true;
};

struct PlannedGroup {
  int prefix = 0;                 // 0: members scored whole
  std::vector<size_t> members;    // indices into the request list
  int64_t tokens = 0;             // computed tokens
};
struct PlannedCall {
  std::vector<PlannedGroup> groups;
  int64_t tokens = 0;
  size_t requests = 0;
};

// Shared prefixes shorter than this are not worth a saved state.
constexpr int kMinSharedPrefix = 4;

std::vector<PlannedCall> plan_score_calls(const std::vector<const ScoreRequest*>& requests, const PlanOptions& opt);

// Tokens a plan computes, and what scoring every request whole (sum of n - 1) would.
struct PlanTokens {
  int64_t computed = 0, whole = 0;
};
PlanTokens plan_tokens(const std::vector<PlannedCall>& calls, const std::vector<const ScoreRequest*>& requests);

}  // namespace bmh::eval

// The evaluation engine: tasks -> lm-eval requests -> token sequences -> unique sequences grouped by shared prefix
// and packed into model calls of at most --token-budget computed tokens, longest first (evals/score_plan.h; a
// progress bar with ETA on stderr) -> per-document metrics -> aggregates. Per-request results go through a Journal,
// so a killed run resumes. With --deterministic a result does not depend on the packing at all (bit for bit); by
// default it may differ in the last bits, and a sample of requests re-scored alone measures by how much.
#pragma once
#include <chrono>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "core/language_model.h"
#include "evals/metrics.h"
#include "evals/requests.h"
#include "evals/task_registry.h"

namespace bmh::eval {

class Journal;

// What scoring did (filled when ScoreOptions::stats is set).
struct ScoreStats {
  size_t unique_requests = 0, computed_requests = 0, calls = 0;
  int64_t tokens_whole = 0;        // sum of n - 1 over the computed requests: each scored whole and alone
  int64_t tokens_computed = 0;     // with shared prefixes run once
  size_t budget_check_requests = 0;          // requests re-scored alone (a call of their own, no shared prefix)
  double budget_check_max_abs_diff = 0;      // largest |log-likelihood difference| against the packed run
  size_t budget_check_greedy_flips = 0;
  double seconds = 0;              // scoring wall time, budget check excluded
  // Under mpirun: each rank's share of the calls and the seconds it spent in them (one entry per rank).
  struct RankShare {
    size_t calls = 0, requests = 0;
    int64_t tokens = 0;
    double busy_seconds = 0;
  };
  std::vector<RankShare> ranks;
};

struct ScoreOptions {
  int64_t token_budget = 8192;     // computed tokens per model call: no padding, shared prefixes counted once
  bool share_prefixes = true;
  bool deterministic = false;      // per-request results bit-identical whatever the packing (backends that can)
  size_t budget_check = 32;        // requests re-scored alone afterwards to measure packing's effect (0: none)
  bool progress = true;
  std::string label = "scoring";   // progress bar prefix
  Journal* journal = nullptr;      // results already there are not recomputed; new ones are appended
  size_t* unique_requests = nullptr;  // out: how many unique sequences the requests were
  ScoreStats* stats = nullptr;     // out
};

// Scores every request; identical (tokens, n_continuation) pairs are run once. Results in input order.
std::vector<ScoreResult> score_requests(LanguageModel& model, const std::vector<ScoreRequest>& requests,
                                        const ScoreOptions& opt);

// One request of one document, as run.
struct RequestRecord {
  int64_t doc_id = 0;
  int idx = 0;                          // Instance.idx (the choice)
  Request text;                         // (context, continuation) strings
  TokenizedRequest tokens;              // before truncation
  int n_truncated = 0;                  // context tokens dropped from the left
  ScoreResult result;
};

struct DocRecord {
  int64_t doc_id = 0;
  int gold = -1;                        // multiple_choice
  int pred = -1, pred_norm = -1;        // argmax of lls, of lls / len(choice)
  double acc = 0, acc_norm = 0;
  double loglikelihood = 0;             // loglikelihood tasks (lambada)
  bool is_greedy = false;
};

struct TaskResult {
  Task task;                            // docs cut to the limit
  int64_t n_original = 0;               // documents in the file
  std::vector<RequestRecord> requests;  // doc order, then idx
  std::vector<DocRecord> docs;
  std::vector<MetricValue> metrics;     // in metric_list order
  int64_t tokens_whole = 0;             // tokens this task's unique requests need scored whole and alone
  int64_t tokens_shared = 0;            // ... with shared prefixes run once (planned for this task alone)
};

struct EvalOptions {
  std::vector<std::string> tasks;
  int64_t limit = 0;                    // 0: all documents; else the first N (lm-eval --limit N)
  TaskOptions task_options;
  int32_t prefix_token = 0;             // <|endoftext|> of GPT-NeoX-20B
  int bootstrap_iters = 100000;
  ScoreOptions score;
  // When set, run_tasks appends the wall seconds of its stages: "tokenize", "score", "metrics".
  std::vector<std::pair<std::string, double>>* stage_seconds = nullptr;
};

// Wall seconds of consecutive stages: done(name) appends the time since the previous done() (or construction or
// restart()) to *out, when out is set.
class StageTimer {
 public:
  explicit StageTimer(std::vector<std::pair<std::string, double>>* out) : out_(out) {}
  void restart() { start_ = std::chrono::steady_clock::now(); }
  void done(const char* name) {
    const auto now = std::chrono::steady_clock::now();
    if (out_) out_->emplace_back(name, std::chrono::duration<double>(now - start_).count());
    start_ = now;
  }

 private:
  std::vector<std::pair<std::string, double>>* out_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

struct LoadedTasks {
  std::vector<Task> tasks;              // documents cut to the limit
  std::vector<int64_t> n_original;      // documents in each file
};
// Loads every task (bad input fails here, before a model is built or a file written) and applies --limit.
LoadedTasks load_tasks(const EvalOptions& opt);
// Scores all the tasks' requests together and computes the metrics.
std::vector<TaskResult> run_tasks(LanguageModel& model, const Encoder& encode, const EvalOptions& opt,
                                  LoadedTasks tasks);
std::vector<TaskResult> run_tasks(LanguageModel& model, const Encoder& encode, const EvalOptions& opt);

// A compact fingerprint (hex) of everything a journal's results depend on.
std::string run_fingerprint(const nlohmann::json& what);

}  // namespace bmh::eval

// The evaluation engine: tasks -> lm-eval requests -> token sequences -> one model call per unique sequence,
// longest first, in batches (a progress bar with ETA on stderr) -> per-document metrics -> aggregates.
// Per-request results go through a Journal, so a killed run resumes; batching never changes a result (the
// LanguageModel scores right-padded batches, and each request is scored alone in effect).
#pragma once
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

struct ScoreOptions {
  int batch_size = 16;
  bool progress = true;
  std::string label = "scoring";   // progress bar prefix
  Journal* journal = nullptr;      // results already there are not recomputed; new ones are appended
  size_t* unique_requests = nullptr;  // out: how many unique sequences the requests were
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
};

struct EvalOptions {
  std::vector<std::string> tasks;
  int64_t limit = 0;                    // 0: all documents; else the first N (lm-eval --limit N)
  TaskOptions task_options;
  int32_t prefix_token = 0;             // <|endoftext|> of GPT-NeoX-20B
  int bootstrap_iters = 100000;
  ScoreOptions score;
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

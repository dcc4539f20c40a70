// The files of an evaluation run, written at the end through temp files renamed into place:
//   <out>/results.json   shaped like lm-evaluation-harness's results (lm_eval/evaluator.py evaluate() and
//                        simple_evaluate(): "results", "group_subtasks", "configs", "versions", "n-shot",
//                        "higher_is_better", "n-samples", "config", "git_hash", "date"), metric keys
//                        "<metric>,none" and "<metric>_stderr,none" (the filter is "none"), plus a "bmh" block
//                        with the data files' sha256, the file formats read and any caveats.
//   <out>/requests.h5    every request (doc_id, idx, context/continuation strings, token counts, continuation
//                        ids, loglikelihood, is_greedy) and every document (gold, chosen, acc, ...), per task.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "evals/eval_engine.h"

namespace bmh::eval {

struct RunInfo {
  std::string model;            // model label (lm-eval "model")
  std::string model_args;       // how it was selected ("preset=tiny-blackmamba-50k,seed=0" / "dir=...")
  std::string backend, dtype;
  int64_t token_budget = 0;     // computed tokens per model call (replaces lm-eval's batch_size)
  bool deterministic = false, share_prefixes = true;
  ScoreStats score;             // what scoring did
  int64_t limit = 0;
  int bootstrap_iters = 100000;
  std::string tokenizer;        // path
  std::string tokenizer_sha256;
  double start_time = 0;        // unix seconds
  double seconds = 0;           // wall time of the evaluation
  size_t unique_requests = 0;
  int max_length = 0;           // the model's max length: contexts are truncated from the left to fit it
  // Wall seconds of each stage before the results are written, in order (load_tasks, load_tokenizer, load_model,
  // tokenize, score, metrics): where a cold run's time goes.
  std::vector<std::pair<std::string, double>> stage_seconds;
};

nlohmann::ordered_json results_json(const std::vector<TaskResult>& results, const RunInfo& info);
// Writes results.json and requests.h5 into `out_dir` (created if needed), each atomically.
void write_results(const std::string& out_dir, const std::vector<TaskResult>& results, const RunInfo& info);
// Every request as one JSON line (task, doc_id, idx, context_ids after lm-eval's left truncation, continuation_ids):
// the token sequences the model scored, for scoring the same requests with another tool (gpu_check's lm-eval-style
// peers read it). Written atomically to out_dir/requests.jsonl.
void write_requests_jsonl(const std::string& out_dir, const std::vector<TaskResult>& results);
// Atomic text file: path.tmp.<pid>, fsync, rename, fsync of the directory.
void write_file_atomic(const std::string& path, const std::string& text);
// The commit the binary was built from (core/build_info.h): full hash, "-dirty" if the tree differed.
std::string source_git_hash();
// The table lm-eval prints (lm_eval/utils.py make_table: Tasks, Version, Filter, n-shot, Metric, Value, Stderr).
std::string results_table(const std::vector<TaskResult>& results);

}  // namespace bmh::eval

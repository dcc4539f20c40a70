// An experiment file (experiments/*.json) parsed and checked in full before anything runs: every key is known,
// every step, preset, task and data file exists, or the run stops with one message naming what is wrong.
//
//   {"name": "default", "description": "...", "backend": "cpu", "dtype": "fp32",
//    "models": [{"name": "blackmamba", "preset": "tiny-blackmamba-50k", "seed": 1, "arch": "blackmamba"},
//               {"name": "bm-2.8b", "dir": "${models_dir}/BlackMamba-2.8B", "download": "Zyphra/BlackMamba-2.8B",
//                "train_tokens": 3e11, "steps": ["info", "eval"]}],
//    "steps": ["info", "forward", "generate", "flops", "latency", "routing", "eval"],
//    "forward": {...}, "generate": {...}, "flops": {...}, "latency": {...}, "routing": {...}, "eval": {...}}
//
// Relative data paths resolve against the repository root (BMH_SOURCE_DIR at build time, or the environment
// variable of that name), so a run works from any directory. Data files are checked when a step uses them.
// "${models_dir}" in a model's dir is replaced by --models-dir. A checkpoint directory without config.json is
// "missing": its steps are reported as such (with "download" as the hint) and the rest of the run goes on.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/model_config.h"
#include "evals/latency.h"
#include "evals/model_loader.h"

namespace bmh::run {

// The steps a model can run, in their canonical order.
const std::vector<std::string>& step_names();
// Architecture tags used for grouping and colours: blackmamba, mamba, transformer, transformer-moe, other.
std::string arch_of(const ModelConfig& cfg);

struct ModelEntry {
  std::string name;                 // unique; the results.h5 group and the row of the summary
  std::string label;                // for plots (default: name)
  std::string arch;                 // default: arch_of(config)
  ModelSpec spec;                   // preset or dir, seed, backend, dtype, expert_act
  std::string download;             // where to get a missing checkpoint ("Zyphra/BlackMamba-2.8B")
  std::string note;                 // printed in the summary (e.g. "never released: random weights")
  double train_tokens = 0;          // tokens it was trained on (for training FLOPs); 0 = unknown
  std::vector<std::string> steps;   // this model's steps (default: the experiment's)
  bool missing = false;             // dir given but no config.json there
  nlohmann::json json;              // the entry as resolved (for the resume fingerprint)
};

struct TextSource {
  std::string name;                 // label in the routing breakdown
  std::string file;                 // a text file ...
  std::string task;                 // ... or a task whose prompts (context + gold continuation) are used
  int sequences = 8;                // text: this many sequences of seq_len tokens from the start of the file
  int limit = 16;                   // task: the first N documents
};

struct ExperimentConfig {
  std::string name, description, path;
  std::vector<ModelEntry> models;
  std::vector<std::string> steps;
  nlohmann::json raw;               // the file as read, for results.json
  // --models / --steps: what this invocation runs (empty = all); results.json still merges every step.
  std::vector<std::string> only_models, only_steps;
  bool selected(const ModelEntry& m, const std::string& step) const;

  // forward: loss and time of one pass over the first `tokens` tokens of `text`.
  std::string forward_text;
  int forward_tokens = 256;
  // generate: greedy continuation of a prompt through the recurrent path, checked against a full forward.
  std::string generate_prompt;
  int generate_tokens = 16;
  // flops: per-token costs at these contexts, memory with these element sizes.
  std::vector<int64_t> flops_contexts;
  int64_t flops_reference_context = 2048;
  int weight_bytes = 2, state_bytes = 2;
  // latency
  LatencyOptions latency;
  // routing
  std::vector<TextSource> routing_sources;
  int routing_seq_len = 256;
  int routing_batch = 4;
  int routing_top_tokens = 10;
  // eval
  std::vector<std::string> eval_tasks;
  int64_t eval_limit = 0;
  int eval_batch_size = 16;
  int eval_bootstrap_iters = 1000;

  nlohmann::json step_section(const std::string& step) const;  // what a step's results depend on
};

struct LoadOptions {
  std::string models_dir;           // replaces ${models_dir}
  std::string backend, dtype;       // override every model's
  std::string router_precision;     // override every model's (fp32 | model | bf16 | fp16)
  std::vector<std::string> only_models, only_steps;  // restrict (each name checked)
};

// Reads and checks an experiment file; errors name the file and the key.
ExperimentConfig load_experiment(const std::string& path, const LoadOptions& opt = {});
// The repository root and a data path resolved against it.
std::string source_dir();
std::string resolve_data_path(const std::string& p);

}  // namespace bmh::run

// The experiment runner behind `bmh run`: models x steps, each step's result kept as a part file so an
// interrupted run resumes step by step, then merged into results/<name>/results.json and results.h5, plotted
// and summarized.
//
// Layout of results/<name>/:
//   parts/<model>/<step>.h5    the step's arrays (written first, atomically)
//   parts/<model>/<step>.json  {"fingerprint", "status", "seconds", "summary"} (written last: the commit mark)
//   results.json               experiment, config, environment, and per model per step status + summary
//   results.h5                 /<model>/<step>/... every array, with description/units/dims attributes;
//                              root and model groups carry the experiment's and model's metadata
//   *.png                      scripts/plot_*.py renderings of results.h5
// A step is skipped on a rerun when its part's fingerprint (the model's spec and the step's options) matches;
// change either and it reruns. A step that fails records nothing: the run goes on and exits non-zero.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/language_model.h"
#include "core/tokenizer.h"
#include "evals/h5_writer.h"
#include "experiments/runner_config.h"

namespace bmh::run {

struct RunOptions {
  std::string out_root = "results";  // results/<name>/
  bool fresh = false;                // ignore (and delete) existing parts
  bool plots = true;
  std::string python = "/usr/bin/python3";
};

// Everything a step may use. The model and tokenizer load on first use.
struct StepEnv {
  const ExperimentConfig& exp;
  const ModelEntry& model;
  const ModelConfig& cfg;
  std::function<LanguageModel&()> lm;
  std::function<const Tokenizer&()> tokenizer;
  std::string work_dir;                              // parts/<model>/ (journals)
  std::function<void(const std::string&)> say;       // one progress line
};

struct StepResult {
  std::string status = "ok";       // ok | skipped
  std::string reason;              // why skipped
  nlohmann::json summary = nlohmann::json::object();
};

// Runs one step, writing its arrays under g (experiments/runner_steps.cpp).
StepResult run_step(const std::string& step, StepEnv& env, h5::Group g);
// Whether a step needs the weights loaded (flops needs only the config).
bool step_needs_model(const std::string& step);
// The train step (experiments/runner_train.cpp): trains the model into <work_dir>/train/ and records its curve.
StepResult step_train(StepEnv& env, h5::Group g);
std::string trained_checkpoint_dir(const std::string& work_dir);

// Prints the summary tables of a merged results.json (experiments/runner_summary.cpp).
void print_summary(const nlohmann::json& results);

// Runs the experiment; returns the process exit code (0: every step ok or skipped).
int run_experiment(const ExperimentConfig& exp, const RunOptions& opt);

// Writes text to path through a temp file + fsync + rename.
void write_text_atomic(const std::string& path, const std::string& text);
// Stable 64-bit FNV-1a of a string, as 16 hex digits.
std::string fingerprint(const std::string& s);

}  // namespace bmh::run

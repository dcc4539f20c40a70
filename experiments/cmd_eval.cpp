// bmh eval: zero-shot accuracy on the seven tasks of the BlackMamba paper with lm-evaluation-harness v0.4.x
// semantics (evals/task_*.cpp, evals/requests.h, evals/metrics.h). Writes <out>/results.json (lm-eval's shape)
// and <out>/requests.h5 (with --requests-jsonl also <out>/requests.jsonl); <out>/journal.bmhj holds the scored
// requests while it runs, so the same command resumes a killed run and ends with the same results.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "core/error.h"
#include "core/tokenizer.h"
#include "evals/distributed.h"
#include "evals/eval_engine.h"
#include "evals/journal.h"
#include "evals/results_writer.h"
#include "evals/task_sha256.h"
#include "experiments/command.h"
#include "experiments/model_options.h"
#include "experiments/output_paths.h"

namespace bmh {
namespace {

struct EvalArgs {
  ModelOptions model;
  std::string tasks, out, hellaswag_file, data_dir, tokenizer;
  int64_t limit = 0;
  int64_t token_budget = 8192;
  std::string batch_size;          // refused: replaced by --token-budget
  size_t budget_check = 32;
  int bootstrap_iters = 100000;
  bool no_progress = false, deterministic = false, no_prefix_sharing = false, requests_jsonl = false;
};

std::string model_name(const ModelSpec& s) {
  if (!s.preset.empty()) return s.preset + "-seed" + std::to_string(s.seed);
  std::string d = s.dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return std::filesystem::path(d).filename().string();
}

void run_eval(const EvalArgs& a) {
  check_output_not_input("--out", a.out, {a.model.spec.dir, a.data_dir, a.hellaswag_file, a.tokenizer});
  auto t0 = std::chrono::system_clock::now();
  eval::EvalOptions opt;
  opt.tasks = eval::parse_task_list(a.tasks);
  opt.limit = a.limit;
  opt.task_options.data_dir = a.data_dir;
  opt.task_options.hellaswag_file = a.hellaswag_file;
  opt.bootstrap_iters = a.bootstrap_iters;
  opt.score.token_budget = a.token_budget;
  opt.score.deterministic = a.deterministic;
  opt.score.share_prefixes = !a.no_prefix_sharing;
  opt.score.budget_check = a.budget_check;
  opt.score.progress = !a.no_progress;
  if (!a.batch_size.empty())
    fail("--batch-size was replaced by --token-budget: tokens computed per model call, requests packed back to back "
         "with no padding and shared prefixes run once (default 8192)");
  if (a.token_budget < 1) fail("--token-budget must be at least 1 (got ", a.token_budget, ")");
  if (a.bootstrap_iters < 1) fail("--bootstrap-iters must be at least 1");

  // Everything that can be wrong with the input fails here, before a model is built or a file is written.
  std::vector<std::pair<std::string, double>> stages;
  eval::StageTimer stage(&stages);
  eval::LoadedTasks loaded = eval::load_tasks(opt);
  stage.done("load_tasks");
  const std::string tok_path = a.tokenizer.empty() ? default_tokenizer_path() : a.tokenizer;
  Tokenizer tok = Tokenizer::load(tok_path);
  stage.done("load_tokenizer");
  ModelSpec spec = a.model.resolve();
  std::unique_ptr<LanguageModel> model = load_model(spec);
  stage.done("load_model");
  if (a.deterministic && !model->batch_invariant())
    fail("--deterministic: backend ", model->describe(), " does not guarantee batch-invariant scores");
  if (model->config().vocab_size < tok.vocab_size())
    fail("model ", model_label(spec), " has ", model->config().vocab_size, " vocabulary rows, fewer than the ",
         tok.vocab_size(), " ids of ", tok_path);

  std::string out = a.out.empty() ? "results/eval-" + model_name(spec) +
                                        (a.limit > 0 ? "-limit" + std::to_string(a.limit) : "")
                                  : a.out;
  eval::RunInfo info;
  info.model = model_label(spec);
  info.model_args = spec.preset.empty() ? "dir=" + spec.dir : "preset=" + spec.preset + ",seed=" + std::to_string(spec.seed);
  if (spec.config.override_expert_act) info.model_args += ",expert_act=" + std::string(to_string(spec.config.expert_act));
  info.backend = spec.backend;
  info.dtype = spec.dtype;
  info.token_budget = a.token_budget;
  info.deterministic = a.deterministic;
  info.share_prefixes = !a.no_prefix_sharing;
  info.limit = a.limit;
  info.bootstrap_iters = a.bootstrap_iters;
  info.tokenizer = tok_path;
  info.max_length = model->config().max_seq_len;
  info.tokenizer_sha256 = eval::sha256_file(tok_path);
  info.start_time = std::chrono::duration<double>(t0.time_since_epoch()).count();

  // Journal records are keyed by their token sequence, so they depend only on the model, its backend and dtype:
  // a resumed run may add tasks or raise --limit and still reuse them.
  nlohmann::json what = {{"model_args", info.model_args}, {"backend", spec.backend}, {"dtype", spec.dtype}};
  if (a.deterministic) what["deterministic"] = true;  // bit-identical results: never mixed with default-mode ones
  // Under mpirun, rank 0 alone touches the run directory: it owns the journal (the other ranks stream their
  // results to it, evals/distributed.h), so a killed run resumes with any number of ranks.
  std::unique_ptr<eval::Journal> journal;
  if (dist::is_root()) {
    std::filesystem::create_directories(out);
    journal = std::make_unique<eval::Journal>(out + "/journal.bmhj", eval::run_fingerprint(what));
  }
  opt.score.journal = journal.get();
  opt.score.unique_requests = &info.unique_requests;
  opt.score.stats = &info.score;
  opt.score.label = "eval";
  opt.stage_seconds = &stages;

  if (dist::is_root()) {
    std::fprintf(stderr, "bmh eval: %s on %s%s -> %s%s\n", info.model.c_str(), a.tasks.c_str(),
                 a.limit > 0 ? (" (first " + std::to_string(a.limit) + " documents each)").c_str() : "", out.c_str(),
                 dist::size() > 1 ? (", " + std::to_string(dist::size()) + " MPI ranks").c_str() : "");
    for (const eval::Task& t : loaded.tasks)
      if (!t.note.empty()) std::fprintf(stderr, "bmh eval: %s: %s\n", t.name.c_str(), t.note.c_str());
  }

  eval::Encoder encode = [&tok](std::string_view s) { return tok.encode(s); };
  opt.prefix_token = tok.eos_id();
  std::vector<eval::TaskResult> results = eval::run_tasks(*model, encode, opt, std::move(loaded));
  info.seconds = std::chrono::duration<double>(std::chrono::system_clock::now() - t0).count();
  info.stage_seconds = stages;
  if (!dist::is_root()) return;  // rank 0 writes and reports for all
  stage.restart();  // run_tasks timed its own stages
  eval::write_results(out, results, info);
  if (a.requests_jsonl) eval::write_requests_jsonl(out, results);
  journal->remove();
  stage.done("write");
  std::string line;
  for (const auto& [name, s] : stages) line += (line.empty() ? "" : ", ") + name + " " + std::to_string(s).substr(0, 6);
  std::fprintf(stderr, "bmh eval: seconds by stage: %s\n", line.c_str());
  std::printf("%s (%s), limit: %s, token_budget: %lld%s\n%s", info.model.c_str(), info.model_args.c_str(),
              a.limit > 0 ? std::to_string(a.limit).c_str() : "None", (long long)a.token_budget,
              a.deterministic ? ", deterministic" : "", eval::results_table(results).c_str());
  const eval::ScoreStats& st = info.score;
  std::printf("scored %zu requests in %zu calls: %lld tokens computed of %lld scored whole (%.3f), %.1f requests/s; "
              "re-scored alone: %zu requests, max |loglikelihood diff| %.3g\n",
              st.computed_requests, st.calls, (long long)st.tokens_computed, (long long)st.tokens_whole,
              st.tokens_whole > 0 ? double(st.tokens_computed) / double(st.tokens_whole) : 1.0,
              st.seconds > 0 ? double(st.computed_requests) / st.seconds : 0.0, st.budget_check_requests,
              st.budget_check_max_abs_diff);
  std::printf("wrote %s/results.json and %s/requests.h5 (%zu unique requests, %.1f s)\n", out.c_str(), out.c_str(),
              info.unique_requests, info.seconds);
}

void add_eval_command(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  auto* sub = app.add_subcommand(
      "eval", "zero-shot tasks with lm-evaluation-harness v0.4 semantics: lambada_openai, hellaswag, piqa, "
              "winogrande, arc_easy, arc_challenge, openbookqa");
  args->model.add_to(sub);
  sub->add_option("--tasks", args->tasks, "comma-separated task names")->required();
  sub->add_option("--limit", args->limit, "only the first N documents of each task (lm-eval --limit N)");
  sub->add_option("--token-budget", args->token_budget,
                  "tokens computed per model call: requests packed back to back with no padding, each shared prefix "
                  "run once; a longer request gets a call of its own")
      ->default_val(8192);
  sub->add_option("--batch-size", args->batch_size, "replaced by --token-budget (refused)");
  sub->add_flag("--deterministic", args->deterministic,
                "per-request log-likelihoods bit-identical whatever the packing and token budget (slower)");
  sub->add_flag("--no-prefix-sharing", args->no_prefix_sharing, "score every request whole (for comparisons)");
  sub->add_option("--budget-check", args->budget_check,
                  "requests re-scored alone at the end; results.json reports the largest log-likelihood difference")
      ->default_val(32);
  sub->add_option("--out", args->out, "run directory (default results/eval-<model>[-limitN]); rerun to resume");
  sub->add_option("--hellaswag-file", args->hellaswag_file,
                  "HellaSwag validation file: rowanz hellaswag_val.jsonl (lm-eval-identical) or the bundled derived "
                  "hellaswag_val_full.txt (the default when data/tasks/hellaswag/hellaswag_val.jsonl is absent)");
  sub->add_option("--data-dir", args->data_dir, "task data directory (default data/tasks of the source tree)");
  sub->add_option("--tokenizer", args->tokenizer, "tokenizer.json (default: the bundled GPT-NeoX-20B one)");
  sub->add_option("--bootstrap-iters", args->bootstrap_iters, "bootstrap resamples for perplexity's stderr")
      ->default_val(100000);
  sub->add_flag("--no-progress", args->no_progress, "no progress bar");
  sub->add_flag("--requests-jsonl", args->requests_jsonl,
                "also write <out>/requests.jsonl: every request's token ids as scored (task, doc_id, idx, "
                "context_ids after left truncation, continuation_ids), to score them with another tool");
  sub->callback([args] { run_eval(*args); });
}

const bool registered = register_command(&add_eval_command);

}  // namespace
}  // namespace bmh

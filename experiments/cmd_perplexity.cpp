// bmh perplexity: word/byte perplexity and bits per byte of a text file with lm-eval's rolling loglikelihood
// windows, as its wikitext task computes them (evals/perplexity.h). wiki.{test,valid,train}.raw files are split
// into WikiText pages and detokenized like lm-eval's wikitext task; other files are one plain document.
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/tokenizer.h"
#include "evals/distributed.h"
#include "evals/journal.h"
#include "evals/perplexity.h"
#include "evals/results_writer.h"
#include "evals/task_python_text.h"
#include "evals/task_sha256.h"
#include "experiments/command.h"
#include "experiments/model_options.h"
#include "experiments/output_paths.h"

namespace bmh {
namespace {

struct PerplexityArgs {
  ModelOptions model;
  std::string text, format = "auto", out, tokenizer;
  int64_t limit = 0;
  int64_t token_budget = 8192;
  std::string batch_size;          // refused: replaced by --token-budget
  bool no_progress = false, deterministic = false;
};

void run_perplexity_command(const PerplexityArgs& a) {
  check_output_not_input("--out", a.out, {a.model.spec.dir, a.text, a.tokenizer});
  auto t0 = std::chrono::system_clock::now();
  std::string text = eval::read_text_file(a.text);
  std::string format = a.format;
  if (format == "auto") {
    std::string base = std::filesystem::path(a.text).filename().string();
    format = base == "wiki.test.raw" || base == "wiki.valid.raw" || base == "wiki.train.raw" ? "wikitext" : "plain";
  }
  std::vector<eval::PerplexityDoc> docs = eval::perplexity_docs(text, format);
  if (a.limit < 0) fail("--limit must be positive");
  if (a.limit > 0 && int64_t(docs.size()) > a.limit) docs.resize(size_t(a.limit));
  if (!a.batch_size.empty())
    fail("--batch-size was replaced by --token-budget: tokens computed per model call, windows packed back to back "
         "with no padding (default 8192)");
  if (a.token_budget < 1) fail("--token-budget must be at least 1 (got ", a.token_budget, ")");
  const std::string tok_path = a.tokenizer.empty() ? default_tokenizer_path() : a.tokenizer;
  Tokenizer tok = Tokenizer::load(tok_path);
  ModelSpec spec = a.model.resolve();
  std::unique_ptr<LanguageModel> model = load_model(spec);
  if (a.deterministic && !model->batch_invariant())
    fail("--deterministic: backend ", model->describe(), " does not guarantee batch-invariant scores");

  eval::ScoreOptions opt;
  opt.token_budget = a.token_budget;
  opt.deterministic = a.deterministic;
  eval::ScoreStats stats;
  opt.stats = &stats;
  opt.progress = !a.no_progress;
  opt.label = "perplexity";
  std::unique_ptr<eval::Journal> journal;
  if (!a.out.empty() && dist::is_root()) {  // rank 0 owns the run directory and its journal (see cmd_eval.cpp)
    std::filesystem::create_directories(a.out);
    // Records are keyed by their token sequence: only the model, backend and dtype must match.
    nlohmann::json what = {{"model", model_label(spec)}, {"seed", spec.seed}};
    if (a.deterministic) what["deterministic"] = true;
    journal = std::make_unique<eval::Journal>(a.out + "/journal.bmhj", eval::run_fingerprint(what));
    opt.journal = journal.get();
  }
  if (dist::is_root())
    std::fprintf(stderr, "bmh perplexity: %s on %s (%s, %zu document%s, max length %d)\n", model_label(spec).c_str(),
                 a.text.c_str(), format.c_str(), docs.size(), docs.size() == 1 ? "" : "s", model->config().max_seq_len);
  eval::Encoder encode = [&tok](std::string_view s) { return tok.encode(s); };
  eval::PerplexityResult r = eval::run_perplexity(*model, encode, docs, tok.eos_id(), opt);
  double seconds = std::chrono::duration<double>(std::chrono::system_clock::now() - t0).count();
  if (!dist::is_root()) return;  // rank 0 writes and reports for all
  std::printf("%s on %s (%s): %zu documents, %lld tokens in %zu windows, %lld words, %lld bytes\n",
              model_label(spec).c_str(), a.text.c_str(), format.c_str(), docs.size(), (long long)r.tokens, r.windows,
              (long long)r.words, (long long)r.bytes);
  std::printf("word_perplexity %.4f  byte_perplexity %.4f  bits_per_byte %.4f  (%.1f s)\n", r.word_perplexity,
              r.byte_perplexity, r.bits_per_byte, seconds);
  if (!a.out.empty()) {
    nlohmann::ordered_json j;
    j["results"]["wikitext"] = {{"alias", format == "wikitext" ? "wikitext" : "text"},
                                {"word_perplexity,none", r.word_perplexity},
                                {"word_perplexity_stderr,none", "N/A"},
                                {"byte_perplexity,none", r.byte_perplexity},
                                {"byte_perplexity_stderr,none", "N/A"},
                                {"bits_per_byte,none", r.bits_per_byte},
                                {"bits_per_byte_stderr,none", "N/A"}};
    j["versions"]["wikitext"] = 2.0;
    j["n-shot"]["wikitext"] = 0;
    j["higher_is_better"]["wikitext"] = {{"word_perplexity", false}, {"byte_perplexity", false}, {"bits_per_byte", false}};
    j["n-samples"]["wikitext"] = {{"original", eval::perplexity_docs(text, format).size()}, {"effective", docs.size()}};
    j["config"] = {{"model", model_label(spec)}, {"batch_size", "token-budget " + std::to_string(a.token_budget)}, {"device", spec.backend},
                   {"dtype", spec.dtype}, {"limit", a.limit > 0 ? nlohmann::ordered_json(a.limit) : nullptr}};
    j["git_hash"] = eval::source_git_hash();
    j["date"] = std::chrono::duration<double>(t0.time_since_epoch()).count();
    j["bmh"] = {{"text", a.text}, {"text_sha256", eval::sha256_hex(text)}, {"format", format},
                {"tokens", r.tokens}, {"windows", r.windows}, {"words", r.words}, {"bytes", r.bytes},
                {"max_length", model->config().max_seq_len}, {"doc_loglikelihood", r.doc_loglikelihood},
                {"scoring", {{"token_budget", a.token_budget}, {"deterministic", a.deterministic},
                             {"calls", stats.calls}, {"tokens_computed", stats.tokens_computed},
                             {"seconds", stats.seconds}, {"ranks", stats.ranks.size()},
                             {"budget_check", {{"requests", stats.budget_check_requests},
                                               {"max_abs_loglikelihood_diff", stats.budget_check_max_abs_diff}}}}}};
    eval::write_file_atomic(a.out + "/results.json", j.dump(2) + "\n");
    journal->remove();
    std::printf("wrote %s/results.json\n", a.out.c_str());
  }
}

void add_perplexity_command(CLI::App& app) {
  auto args = std::make_shared<PerplexityArgs>();
  auto* sub = app.add_subcommand("perplexity",
                                 "word/byte perplexity and bits per byte of a text with lm-eval's rolling windows");
  args->model.add_to(sub);
  sub->add_option("--text", args->text, "text file (UTF-8)")->required();
  sub->add_option("--format", args->format,
                  "wikitext: split into WikiText pages and detokenize as lm-eval's wikitext task; plain: one "
                  "document; auto: wikitext for wiki.{test,valid,train}.raw")
      ->check(CLI::IsMember({"auto", "wikitext", "plain"}))->default_val("auto");
  sub->add_option("--limit", args->limit, "only the first N documents");
  sub->add_option("--token-budget", args->token_budget,
                  "tokens computed per model call (windows packed back to back, no padding)")->default_val(8192);
  sub->add_option("--batch-size", args->batch_size, "replaced by --token-budget (refused)");
  sub->add_flag("--deterministic", args->deterministic,
                "per-window log-likelihoods bit-identical whatever the packing and token budget (slower)");
  sub->add_option("--out", args->out, "write <out>/results.json (and resume from <out>/journal.bmhj)");
  sub->add_option("--tokenizer", args->tokenizer, "tokenizer.json (default: the bundled GPT-NeoX-20B one)");
  sub->add_flag("--no-progress", args->no_progress, "no progress bar");
  sub->callback([args] { run_perplexity_command(*args); });
}

const bool registered = register_command(&add_perplexity_command);

}  // namespace
}  // namespace bmh

// `bmh eval` and `bmh perplexity` end to end on the seeded tiny BlackMamba preset with the full 50304-token
// vocabulary and the real GPT-NeoX-20B tokenizer: all seven tasks (--limit 50) write every metric lm-eval reports;
// each request's loglikelihood equals a direct `bmh forward` of its tokens (within fp32 rounding: packed scoring runs
// other GEMM shapes); metrics do not depend on the token budget, and with --deterministic no log-likelihood does
// either; a run killed with SIGKILL resumes from its journal to identical results; bad input fails with one line
// and writes nothing.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/checkpoint.h"
#include "core/tokenizer.h"
#include "evals/eval_engine.h"
#include "evals/h5_writer.h"
#include "evals/model_loader.h"
#include "evals/task_python_text.h"
#include "tests/cli_test_util.h"

namespace bmh {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kPreset = " --preset tiny-blackmamba-50k --seed 7";
const std::vector<std::string> kAllTasks = {"lambada_openai", "hellaswag", "piqa", "winogrande",
                                            "arc_easy", "arc_challenge", "openbookqa"};

using test::CmdResult;
using test::count_lines;
using test::read_json;

CmdResult run(const std::string& args) { return test::run_cmd(std::string(BMH_BINARY) + " " + args); }

fs::path scratch(const std::string& name) { return test::scratch_dir("bmh_eval_cli", name); }

TEST(EvalCli, AllSevenTasksWriteEveryLmEvalMetric) {
  fs::path out = scratch("seven");
  std::string tasks;
  for (const auto& t : kAllTasks) tasks += (tasks.empty() ? "" : ",") + t;
  CmdResult r = run("eval" + kPreset + " --tasks " + tasks + " --limit 50 --no-progress --out " + out.string());
  ASSERT_EQ(r.status, 0) << r.output;
  json j = read_json(out / "results.json");
  const std::string h5 = (out / "requests.h5").string();
  for (const std::string& t : kAllTasks) {
    const json& res = j["results"][t];
    std::vector<std::string> metrics = t == "lambada_openai" ? std::vector<std::string>{"perplexity", "acc"}
                                       : t == "winogrande"   ? std::vector<std::string>{"acc"}
                                                             : std::vector<std::string>{"acc", "acc_norm"};
    for (const std::string& m : metrics) {
      ASSERT_TRUE(res.contains(m + ",none")) << t << " " << m;
      ASSERT_TRUE(res[m + "_stderr,none"].is_number()) << t << " " << m;
      if (m != "perplexity") {
        EXPECT_GE(res[m + ",none"].get<double>(), 0.0);
        EXPECT_LE(res[m + ",none"].get<double>(), 1.0);
      } else {
        EXPECT_GT(res[m + ",none"].get<double>(), 1.0);
      }
    }
    EXPECT_EQ(res.size(), 1 + 2 * metrics.size()) << t;  // alias + value and stderr of each metric
    EXPECT_EQ(j["n-samples"][t]["effective"], 50);
    EXPECT_EQ(j["versions"][t], 1.0);
    EXPECT_EQ(j["n-shot"][t], 0);
    // requests.h5: one request per choice of each of the 50 documents; acc is the mean of the per-doc items.
    eval::TaskOptions topt;
    eval::Task task = eval::load_task(t, topt);
    size_t n_requests = 0;
    for (size_t d = 0; d < 50; ++d) n_requests += task.docs[d].requests.size();
    EXPECT_EQ(h5::read_doubles(h5, t + "/requests/loglikelihood").size(), n_requests) << t;
    std::vector<double> acc = h5::read_doubles(h5, t + "/docs/acc");
    ASSERT_EQ(acc.size(), 50u);
    double sum = 0;
    for (double a : acc) sum += a;
    EXPECT_DOUBLE_EQ(res["acc,none"].get<double>(), sum / 50) << t;
    if (t != "lambada_openai") {
      std::vector<double> gold = h5::read_doubles(h5, t + "/docs/gold"), chosen = h5::read_doubles(h5, t + "/docs/chosen");
      for (size_t d = 0; d < 50; ++d) {
        EXPECT_EQ(gold[d], task.docs[d].gold);
        EXPECT_EQ(acc[d], chosen[d] == gold[d] ? 1.0 : 0.0);
      }
    }
  }
  // Where the run's time went, stage by stage; the stages lie within the run (their sum is at most the total).
  const json& st = j["bmh"]["stage_seconds"];
  std::vector<std::string> stage_names;
  double stage_sum = 0;
  for (const auto& [k, v] : st.items()) {
    stage_names.push_back(k);
    EXPECT_GE(v.get<double>(), 0.0) << k;
    stage_sum += v.get<double>();
  }
  std::sort(stage_names.begin(), stage_names.end());  // read back unordered (the file keeps the run's order)
  EXPECT_EQ(stage_names, (std::vector<std::string>{"load_model", "load_tasks", "load_tokenizer", "metrics", "score",
                                                   "tokenize"}));
  EXPECT_LE(stage_sum, std::stod(j["total_evaluation_time_seconds"].get<std::string>()) + 1e-3);
  EXPECT_NE(r.output.find("bmh eval: seconds by stage: load_tasks "), std::string::npos) << r.output;
  EXPECT_EQ(j["bmh"]["task_formats"]["hellaswag"], "derived-txt");
  EXPECT_NE(j["bmh"]["notes"]["hellaswag"].get<std::string>().find("not lm-eval-identical"), std::string::npos);
  EXPECT_FALSE(fs::exists(out / "journal.bmhj"));
  fs::remove_all(out);
}

// The log-softmax sum of the continuation tokens from logits that `bmh forward` wrote for [1, n-1] ids.
ScoreResult from_logits(const Tensor& logits, const std::vector<int32_t>& tokens, int n_cont) {
  const int64_t V = logits.dim(2), n = int64_t(tokens.size());
  const float* lp = logits.data<float>();
  ScoreResult r{0, true};
  for (int64_t p = n - 1 - n_cont; p < n - 1; ++p) {
    auto [l, is_max] = log_softmax_at(lp + p * V, V, tokens[p + 1]);
    r.logprob += l;
    r.is_greedy = r.is_greedy && is_max;
  }
  return r;
}

TEST(EvalCli, RequestLoglikelihoodEqualsDirectForward) {
  fs::path out = scratch("direct");
  CmdResult r = run("eval" + kPreset + " --tasks piqa,lambada_openai,winogrande --limit 3 --token-budget 64 --no-progress "
                    "--requests-jsonl --out " + out.string());
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string h5 = (out / "requests.h5").string();
  // --requests-jsonl: one line per request, in the order of requests.h5, with the token ids scored below.
  std::vector<json> lines;
  {
    std::ifstream in(out / "requests.jsonl");
    for (std::string l; std::getline(in, l);) lines.push_back(json::parse(l));
  }
  ASSERT_EQ(lines.size(), size_t(3 * 2 + 3 + 3 * 2));
  Tokenizer tok = Tokenizer::load(default_tokenizer_path());
  eval::Encoder enc = [&](std::string_view s) { return tok.encode(s); };
  int checked = 0;
  double worst = 0;
  for (std::string t : {"piqa", "lambada_openai", "winogrande"}) {
    std::vector<std::string> ctx = h5::read_strings(h5, t + "/requests/context");
    std::vector<std::string> cont = h5::read_strings(h5, t + "/requests/continuation");
    std::vector<double> ll = h5::read_doubles(h5, t + "/requests/loglikelihood");
    std::vector<double> greedy = h5::read_doubles(h5, t + "/requests/is_greedy");
    std::vector<double> ids = h5::read_doubles(h5, t + "/requests/continuation_ids");
    std::vector<double> off = h5::read_doubles(h5, t + "/requests/continuation_offsets");
    for (size_t i = 0; i < ctx.size(); ++i) {
      eval::TokenizedRequest tr = eval::encode_request(ctx[i], cont[i], enc, tok.eos_id());
      ASSERT_EQ(tr.continuation.size(), size_t(off[i + 1] - off[i]));
      for (size_t k = 0; k < tr.continuation.size(); ++k) EXPECT_EQ(tr.continuation[k], ids[size_t(off[i]) + k]);
      const json& line = lines.at(size_t(checked));
      EXPECT_EQ(line["task"], t);
      EXPECT_EQ(line["context_ids"].get<std::vector<int32_t>>(), tr.context) << t << " request " << i;
      EXPECT_EQ(line["continuation_ids"].get<std::vector<int32_t>>(), tr.continuation) << t << " request " << i;
      std::vector<int32_t> tokens = tr.context;
      tokens.insert(tokens.end(), tr.continuation.begin(), tr.continuation.end());
      std::vector<int64_t> in(tokens.begin(), tokens.end() - 1);
      const std::string in_path = (out / "in.safetensors").string(), logits_path = (out / "logits.safetensors").string();
      write_safetensors(in_path, {{"input_ids", Tensor::from_i64(in, {1, int64_t(in.size())})}});
      CmdResult f = run("forward" + kPreset + " --inputs " + in_path + " --out " + logits_path);
      ASSERT_EQ(f.status, 0) << f.output;
      Checkpoint got = read_safetensors(logits_path);
      ScoreResult direct = from_logits(got.tensors.at("logits"), tokens, int(tr.continuation.size()));
      // fp32 logits through other GEMM shapes (the LM head only at scored rows, sequences packed): observed
      // 1.4e-9 relative, bound 1e-7.
      EXPECT_NEAR(ll[i], direct.logprob, 1e-7 * std::max(1.0, std::abs(direct.logprob))) << t << " request " << i;
      worst = std::max(worst, std::abs(ll[i] - direct.logprob) / std::max(1.0, std::abs(direct.logprob)));
      EXPECT_EQ(greedy[i] == 1.0, direct.is_greedy) << t << " request " << i;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 3 * 2 + 3 + 3 * 2);
  std::printf("worst relative log-likelihood difference from bmh forward: %.3g\n", worst);
  fs::remove_all(out);
}

TEST(EvalCli, ResultsDoNotDependOnPacking) {
  ModelSpec spec;
  spec.preset = "tiny-blackmamba-50k";
  spec.seed = 7;
  auto model = load_model(spec);
  Tokenizer tok = Tokenizer::load(default_tokenizer_path());
  eval::Encoder enc = [&](std::string_view s) { return tok.encode(s); };
  eval::EvalOptions opt;
  opt.tasks = {"hellaswag", "lambada_openai", "winogrande", "arc_challenge"};
  opt.limit = 6;
  opt.bootstrap_iters = 1000;
  opt.score.progress = false;
  opt.score.budget_check = 0;
  for (bool det : {true, false}) {
    opt.score.deterministic = det;
    std::vector<std::vector<eval::TaskResult>> runs;
    for (int64_t budget : {1, 100000}) {
      opt.score.token_budget = budget;
      runs.push_back(eval::run_tasks(*model, enc, opt));
    }
    opt.score.share_prefixes = false;  // and every request whole
    runs.push_back(eval::run_tasks(*model, enc, opt));
    opt.score.share_prefixes = true;
    for (size_t k = 1; k < runs.size(); ++k)
      for (size_t t = 0; t < runs[0].size(); ++t) {
        ASSERT_EQ(runs[k][t].requests.size(), runs[0][t].requests.size());
        for (size_t i = 0; i < runs[0][t].requests.size(); ++i) {
          const double a = runs[k][t].requests[i].result.logprob, b = runs[0][t].requests[i].result.logprob;
          if (det) {
            EXPECT_EQ(a, b) << opt.tasks[t] << " request " << i << " run " << k;  // bit for bit
          } else {
            // fp32, other GEMM shapes: observed ~1e-9 relative, bound 1e-7.
            EXPECT_NEAR(a, b, 1e-7 * std::max(1.0, std::abs(b))) << opt.tasks[t] << " request " << i << " run " << k;
          }
          EXPECT_EQ(runs[k][t].requests[i].result.is_greedy, runs[0][t].requests[i].result.is_greedy);
        }
        for (size_t m = 0; m < runs[0][t].metrics.size(); ++m)
          if (det || runs[0][t].metrics[m].name != "perplexity") {
            EXPECT_EQ(runs[k][t].metrics[m].value, runs[0][t].metrics[m].value) << opt.tasks[t] << " det " << det;
          } else {
            EXPECT_NEAR(runs[k][t].metrics[m].value, runs[0][t].metrics[m].value, 1e-6 * runs[0][t].metrics[m].value);
          }
      }
  }
}

TEST(EvalCli, KilledRunResumesToIdenticalResults) {
  fs::path ref = scratch("ref"), killed = scratch("killed");
  // --deterministic: the resumed run packs the rest differently and must still give bit-identical results.
  const std::string common =
      "eval" + kPreset + " --tasks piqa,lambada_openai,arc_easy --limit 12 --no-progress --deterministic";
  CmdResult r = run(common + " --token-budget 16 --out " + ref.string());
  ASSERT_EQ(r.status, 0) << r.output;

  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::freopen("/dev/null", "w", stdout);
    std::freopen("/dev/null", "w", stderr);
    ::execl(BMH_BINARY, BMH_BINARY, "eval", "--preset", "tiny-blackmamba-50k", "--seed", "7", "--tasks",
            "piqa,lambada_openai,arc_easy", "--limit", "12", "--no-progress", "--deterministic", "--token-budget", "16",
            "--out", killed.c_str(), (char*)nullptr);
    ::_exit(127);
  }
  const fs::path journal = killed / "journal.bmhj";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (count_lines(journal) < 1 + 20 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(pid, SIGKILL);
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFSIGNALED(st)) << "the run ended before it could be killed";
  ASSERT_FALSE(fs::exists(killed / "results.json"));
  size_t journaled = count_lines(journal) - 1;
  EXPECT_GE(journaled, 20u);

  CmdResult resumed = run(common + " --token-budget 100 --out " + killed.string());
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming: "), std::string::npos) << resumed.output;
  EXPECT_EQ(read_json(ref / "results.json")["results"], read_json(killed / "results.json")["results"]);
  for (std::string t : {"piqa", "lambada_openai", "arc_easy"})
    for (std::string d : {"requests/loglikelihood", "requests/is_greedy", "docs/acc"})
      EXPECT_EQ(h5::read_doubles((ref / "requests.h5").string(), t + "/" + d),
                h5::read_doubles((killed / "requests.h5").string(), t + "/" + d)) << t << "/" << d;
  EXPECT_FALSE(fs::exists(journal));
  fs::remove_all(ref);
  fs::remove_all(killed);
}

TEST(EvalCli, BadInputFailsWithOneLineAndWritesNothing) {
  fs::path out = scratch("bad"), data = scratch("bad_data");
  auto expect_error = [&](const std::string& args, const std::string& needle) {
    CmdResult r = run("eval" + kPreset + " " + args + " --out " + out.string());
    EXPECT_NE(r.status, 0) << args;
    EXPECT_EQ(r.output.rfind("bmh: error: ", 0), 0u) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(out)) << args;
  };
  expect_error("--tasks piqa --batch-size 4", "--batch-size was replaced by --token-budget");
  expect_error("--tasks piqa --token-budget 0", "--token-budget must be at least 1 (got 0)");
  expect_error("--tasks piqa,nosuch",
               "unknown task \"nosuch\" (known tasks: lambada_openai, hellaswag, piqa, winogrande, arc_easy, "
               "arc_challenge, openbookqa)");
  fs::create_directories(data / "piqa");
  std::ofstream(data / "piqa/valid.jsonl") << "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n"
                                           << "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n"
                                           << "{\"goal\": \"g\", \"sol1\": \"a\" \"sol2\": \"b\"}\n";
  std::ofstream(data / "piqa/valid-labels.lst") << "0\n1\n0\n";
  expect_error("--tasks piqa --data-dir " + data.string(), "piqa/valid.jsonl:3: malformed JSON");
  fs::create_directories(data / "winogrande");
  std::ofstream(data / "winogrande/dev.jsonl")
      << "{\"sentence\": \"a _ b\", \"option1\": \"x\", \"option2\": \"y\", \"answer\": \"3\"}\n";
  expect_error("--tasks winogrande --data-dir " + data.string(), "winogrande/dev.jsonl:1: field \"answer\": label out of range");
  fs::create_directories(data / "openbookqa");
  std::ofstream(data / "openbookqa/test.jsonl")
      << "{\"id\": \"1\", \"question\": {\"stem\": \"s\", \"choices\": [{\"text\": \"t\", \"label\": \"A\"}]}}\n";
  expect_error("--tasks openbookqa --data-dir " + data.string(), "openbookqa/test.jsonl:1: field \"answerKey\": missing");
  std::ofstream(data / "hs.txt") << "Ctx: a\n7\ne1\ne2\ne3\ne4\n";
  expect_error("--tasks hellaswag --hellaswag-file " + (data / "hs.txt").string(), "hs.txt:2: label out of range");
  fs::remove_all(data);
}

TEST(EvalCli, PerplexityOfWikitextAndPlainText) {
  fs::path out = scratch("ppl");
  CmdResult r = run("perplexity" + kPreset + " --text " + std::string(BMH_SOURCE_DIR) +
                    "/data/text/wiki.test.raw --limit 1 --no-progress --out " + out.string());
  ASSERT_EQ(r.status, 0) << r.output;
  json j = read_json(out / "results.json");
  const json& w = j["results"]["wikitext"];
  EXPECT_EQ(w["word_perplexity_stderr,none"], "N/A");
  EXPECT_EQ(j["bmh"]["format"], "wikitext");
  // CPython 3.12.1, preprocess_wikitext.process_results on the first page: 1093 words, 5667 bytes.
  EXPECT_EQ(j["bmh"]["words"], 1093);
  EXPECT_EQ(j["bmh"]["bytes"], 5667);
  double ll = j["bmh"]["doc_loglikelihood"][0];
  EXPECT_EQ(w["word_perplexity,none"].get<double>(), std::exp(-ll / 1093));
  EXPECT_EQ(w["byte_perplexity,none"].get<double>(), std::exp(-ll / 5667));
  EXPECT_EQ(w["bits_per_byte,none"].get<double>(), -(ll / 5667) / std::log(2.0));

  // A plain text longer than the model's 2048 tokens runs in rolling windows.
  std::string text = eval::read_text_file(std::string(BMH_SOURCE_DIR) + "/data/text/tinyshakespeare.input.txt");
  fs::create_directories(out);
  std::ofstream(out / "plain.txt") << text.substr(0, 9000);
  r = run("perplexity" + kPreset + " --text " + (out / "plain.txt").string() + " --no-progress --out " +
          (out / "plain").string());
  ASSERT_EQ(r.status, 0) << r.output;
  j = read_json(out / "plain" / "results.json");
  EXPECT_EQ(j["bmh"]["format"], "plain");
  EXPECT_EQ(j["bmh"]["windows"], 2);
  EXPECT_GT(j["bmh"]["tokens"].get<int>(), 2048);
  EXPECT_EQ(j["bmh"]["bytes"], 9000);
  fs::remove_all(out);
}

}  // namespace
}  // namespace bmh

// Request encoding (lm_eval/api/model.py TemplateLM.loglikelihood/_encode_pair, huggingface.py truncation,
// lm_eval/utils.py rolling windows) with a toy word-level tokenizer, and the engine's scheduling (dedupe, input
// order, batching) and journal (resume after a crash, torn lines, wrong run) with a deterministic fake model.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/error.h"
#include "evals/eval_engine.h"
#include "evals/journal.h"
#include "evals/requests.h"

using namespace bmh;
using namespace bmh::eval;
namespace fs = std::filesystem;

// GPT-2-like pieces: a run of spaces is its own piece except that a single space before a word joins the word;
// "<|endoftext|>" is id 0; other pieces get ids from 10 on, in order of first appearance.
struct ToyTokenizer {
  std::map<std::string, int32_t> ids{{"<|endoftext|>", 0}};
  std::vector<int32_t> operator()(std::string_view s) {
    auto space = [&](size_t k) { return k < s.size() && std::isspace((unsigned char)s[k]); };
    auto eot = [&](size_t k) { return s.compare(k, 13, "<|endoftext|>") == 0; };
    auto word_end = [&](size_t k) {
      while (k < s.size() && !space(k) && !eot(k)) ++k;
      return k;
    };
    std::vector<std::string> pieces;
    size_t i = 0;
    while (i < s.size()) {
      size_t j;
      if (eot(i)) {
        j = i + 13;
      } else if (s[i] == ' ' && i + 1 < s.size() && !space(i + 1) && !eot(i + 1)) {
        j = word_end(i + 1);  // " word"
      } else if (space(i)) {
        j = i;
        while (space(j)) ++j;
        if (j < s.size() && s[j - 1] == ' ' && j - 1 > i && !eot(j)) --j;  // leave one space to the next word
      } else {
        j = word_end(i);
      }
      pieces.emplace_back(s.substr(i, j - i));
      i = j;
    }
    std::vector<int32_t> out;
    for (const auto& p : pieces) out.push_back(ids.emplace(p, int32_t(ids.size() + 9)).first->second);
    return out;
  }
};

TEST(Requests, TrailingWhitespaceMovesToContinuation) {
  ToyTokenizer tok;
  Encoder enc = [&](std::string_view s) { return tok(s); };
  TokenizedRequest r = encode_request("Question: x\nAnswer: ", "A", enc, 0);
  EXPECT_EQ(r.context, tok("Question: x\nAnswer:"));
  EXPECT_EQ(r.continuation, tok(" A"));  // not tok(" ") + tok("A")
  // tokens(context + continuation) minus tokens(context)
  TokenizedRequest s = encode_request("the cat", " sat down", enc, 0);
  std::vector<int32_t> whole = tok("the cat sat down");
  EXPECT_EQ(s.context, tok("the cat"));
  EXPECT_EQ(s.continuation, std::vector<int32_t>(whole.begin() + 2, whole.end()));
}

TEST(Requests, EmptyContextUsesEndOfText) {
  ToyTokenizer tok;
  Encoder enc = [&](std::string_view s) { return tok(s); };
  TokenizedRequest r = encode_request("", " hello world", enc, 0);
  EXPECT_EQ(r.context, std::vector<int32_t>{0});
  EXPECT_EQ(r.continuation, tok(" hello world"));
  // A continuation that starts with the prefix token supplies the context itself.
  TokenizedRequest p = encode_request("", "<|endoftext|> hi", enc, 0);
  EXPECT_EQ(p.context, std::vector<int32_t>{0});
  EXPECT_EQ(p.continuation, tok(" hi"));
}

TEST(Requests, ContinuationMergedIntoContextFails) {
  ToyTokenizer tok;
  Encoder enc = [&](std::string_view s) { return tok(s); };
  // "ab" + "cd" encodes as the single piece "abcd": no continuation tokens (lm-eval asserts).
  EXPECT_THROW(encode_request("ab", "cd", enc, 0), Error);
}

TEST(Requests, LeftTruncation) {
  TokenizedRequest r{{1, 2, 3, 4, 5, 6}, {7, 8}};
  ScoreRequest s = to_score_request(r, 5);  // keep max_length + 1 = 6 tokens
  EXPECT_EQ(s.tokens, (std::vector<int32_t>{3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(s.n_continuation, 2);
  ScoreRequest u = to_score_request(r, 100);
  EXPECT_EQ(u.tokens.size(), 8u);
  EXPECT_THROW(to_score_request({{1}, {2, 3, 4}}, 2), Error);  // continuation longer than max length
}

TEST(Requests, RollingWindows) {
  // Ten tokens t0..t9 = 100..109, max length 4, prefix 0 (worked by hand from get_rolling_token_windows and
  // make_disjoint_window): [0] -> t0..t3; [t3] -> t4..t7; [t5 t6 t7] -> t8 t9.
  std::vector<int32_t> t = {100, 101, 102, 103, 104, 105, 106, 107, 108, 109};
  std::vector<TokenizedRequest> w = rolling_windows(t, 0, 4);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0].context, (std::vector<int32_t>{0}));
  EXPECT_EQ(w[0].continuation, (std::vector<int32_t>{100, 101, 102, 103}));
  EXPECT_EQ(w[1].context, (std::vector<int32_t>{103}));
  EXPECT_EQ(w[1].continuation, (std::vector<int32_t>{104, 105, 106, 107}));
  EXPECT_EQ(w[2].context, (std::vector<int32_t>{105, 106, 107}));
  EXPECT_EQ(w[2].continuation, (std::vector<int32_t>{108, 109}));
  // Every window fits max length + 1 and every token is predicted exactly once.
  for (const auto& x : w) EXPECT_LE(x.context.size() + x.continuation.size(), 5u);
  EXPECT_TRUE(rolling_windows({}, 0, 4).empty());
  std::vector<TokenizedRequest> one = rolling_windows({7, 8}, 0, 4);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].context, (std::vector<int32_t>{0}));
  EXPECT_EQ(one[0].continuation, (std::vector<int32_t>{7, 8}));
}

// Deterministic scores from the tokens alone; counts what it was asked; can fail on a given call.
class FakeModel : public LanguageModel {
 public:
  FakeModel() {
    cfg_.name = "fake";
    cfg_.vocab_size = 50304;
    cfg_.max_seq_len = 64;
  }
  const ModelConfig& config() const override { return cfg_; }
  std::string describe() const override { return "fake"; }
  ForwardOutput forward(const Tensor&, const ForwardOptions&) override { fail("fake model: no forward"); }
  std::unique_ptr<Decoder> decoder(int) override { fail("fake model: no decoder"); }
  static ScoreResult expected(const ScoreRequest& r) {
    double lp = 0;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < r.tokens.size(); ++i) {
      h = (h ^ uint64_t(r.tokens[i])) * 1099511628211ull;
      if (i + r.n_continuation >= r.tokens.size()) lp -= double(h % 1000) / 100.0;
    }
    return {lp, h % 3 == 0};
  }
  std::vector<ScoreResult> score(const std::vector<ScoreRequest>& reqs) override {
    if (calls == fail_on_call) fail("fake model: simulated crash");
    ++calls;
    batch_sizes.push_back(reqs.size());
    call_tokens.push_back(0);
    std::vector<ScoreResult> out;
    for (const auto& r : reqs) {
      call_tokens.back() += int64_t(r.tokens.size()) - 1;
      out.push_back(expected(r));
      seen += 1;
    }
    return out;
  }
  ModelConfig cfg_;
  int calls = 0, fail_on_call = -1;
  size_t seen = 0;
  std::vector<size_t> batch_sizes;
  std::vector<int64_t> call_tokens;
};

static std::vector<ScoreRequest> some_requests() {
  std::vector<ScoreRequest> v;
  for (int i = 0; i < 23; ++i) {
    ScoreRequest r;
    for (int k = 0; k < 3 + (i * 7) % 11; ++k) r.tokens.push_back(10 + (i * 13 + k * 5) % 50);
    r.n_continuation = std::min(1 + i % 3, int(r.tokens.size()) - 1);  // at least one context token
    v.push_back(r);
  }
  v.push_back(v[4]);  // duplicates are scored once
  v.push_back(v[9]);
  return v;
}

TEST(Engine, DedupesAndKeepsInputOrder) {
  std::vector<ScoreRequest> reqs = some_requests();
  for (int64_t budget : {1, 30, 1000}) {
    FakeModel m;
    ScoreOptions opt;
    opt.token_budget = budget;
    opt.budget_check = 0;
    opt.progress = false;
    std::vector<ScoreResult> got = score_requests(m, reqs, opt);
    ASSERT_EQ(got.size(), reqs.size());
    EXPECT_EQ(m.seen, reqs.size() - 2) << "token budget " << budget;
    for (size_t i = 0; i < reqs.size(); ++i) {
      EXPECT_EQ(got[i].logprob, FakeModel::expected(reqs[i]).logprob);
      EXPECT_EQ(got[i].is_greedy, FakeModel::expected(reqs[i]).is_greedy);
    }
    // No two of these requests share a prefix: a call's tokens are the sum of n - 1, within the budget unless a
    // single request exceeds it.
    for (size_t c = 0; c < m.batch_sizes.size(); ++c) {
      if (m.batch_sizes[c] > 1) { EXPECT_LE(m.call_tokens[c], budget); }
    }
    if (budget == 1) { EXPECT_EQ(m.calls, int(reqs.size()) - 2); }
    if (budget == 1000) { EXPECT_EQ(m.calls, 1); }
  }
}

static std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("bmh_eval_engine_" + std::to_string(::getpid()) + "_" + name)).string();
}

TEST(Engine, JournalResumesAfterCrash) {
  std::vector<ScoreRequest> reqs = some_requests();
  std::string path = temp_path("journal");
  fs::remove(path);
  ScoreOptions opt;
  opt.token_budget = 30;
  opt.budget_check = 0;
  opt.progress = false;
  size_t journaled = 0;
  {
    FakeModel crashing;
    crashing.fail_on_call = 3;  // dies during the 4th call: the first three calls' results are in the journal
    Journal j(path, "fp1");
    opt.journal = &j;
    EXPECT_THROW(score_requests(crashing, reqs, opt), Error);
    for (size_t b : crashing.batch_sizes) journaled += b;
  }
  {
    std::ofstream(path, std::ios::app) << "0123456789abcdef";  // a torn write at the moment of the crash
  }
  FakeModel resumed;
  Journal j(path, "fp1");
  EXPECT_GE(journaled, 6u);
  EXPECT_EQ(j.resumed(), journaled);
  opt.journal = &j;
  opt.token_budget = 50;  // packing may differ on resume
  std::vector<ScoreResult> got = score_requests(resumed, reqs, opt);
  EXPECT_EQ(resumed.seen, reqs.size() - 2 - journaled);
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(got[i].logprob, FakeModel::expected(reqs[i]).logprob);  // bit-identical through the hex float
    EXPECT_EQ(got[i].is_greedy, FakeModel::expected(reqs[i]).is_greedy);
  }
  // A journal of another run is refused; a corrupt record names its line.
  EXPECT_THROW(Journal(path, "fp2"), Error);
  {
    std::ofstream(path, std::ios::app) << "zz not a record\n";
  }
  try {
    Journal bad(path, "fp1");
    ADD_FAILURE() << "corrupt journal accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(":25: malformed journal record"), std::string::npos) << e.what();
  }
  fs::remove(path);
}

TEST(Engine, RunTasksComputesLmEvalMetrics) {
  ToyTokenizer tok;
  Encoder enc = [&](std::string_view s) { return tok(s); };
  FakeModel m;
  EvalOptions opt;
  opt.tasks = {"piqa", "lambada_openai", "winogrande"};
  opt.limit = 5;
  opt.bootstrap_iters = 1000;
  opt.score.progress = false;
  std::vector<TaskResult> res = run_tasks(m, enc, opt);
  ASSERT_EQ(res.size(), 3u);
  for (const TaskResult& tr : res) {
    EXPECT_EQ(tr.docs.size(), 5u);
    EXPECT_GT(tr.n_original, 5);
    std::vector<double> acc;
    for (const DocRecord& d : tr.docs) acc.push_back(d.acc);
    EXPECT_EQ(tr.metrics[tr.task.name == "lambada_openai" ? 1 : 0].value, py_mean(acc));
  }
  // piqa: 2 requests per doc; pred is the argmax of the two loglikelihoods.
  const TaskResult& piqa = res[0];
  ASSERT_EQ(piqa.requests.size(), 10u);
  for (size_t d = 0; d < 5; ++d) {
    double a = piqa.requests[2 * d].result.logprob, b = piqa.requests[2 * d + 1].result.logprob;
    EXPECT_EQ(piqa.docs[d].pred, b > a ? 1 : 0);
  }
  EXPECT_EQ(piqa.metrics.size(), 2u);
  EXPECT_EQ(piqa.metrics[1].name, "acc_norm");
  // lambada: perplexity = exp(-mean(ll)), its stderr bootstrapped.
  const TaskResult& lam = res[1];
  std::vector<double> lls;
  for (const DocRecord& d : lam.docs) lls.push_back(d.loglikelihood);
  EXPECT_EQ(lam.metrics[0].name, "perplexity");
  EXPECT_EQ(lam.metrics[0].value, perplexity(lls));
  EXPECT_EQ(lam.metrics[0].stderr_, bootstrap_stderr(Statistic::Perplexity, lls, 1000));
  EXPECT_FALSE(lam.metrics[0].higher_is_better);
  // winogrande: the two requests of a doc share the continuation tokens' text.
  EXPECT_EQ(res[2].requests[0].text.continuation, res[2].requests[1].text.continuation);
  EXPECT_EQ(res[2].metrics.size(), 1u);
}

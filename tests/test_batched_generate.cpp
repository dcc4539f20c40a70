// Continuous batching (core/batched_generate.h) and sampling (core/sampling.h) on the CPU reference:
//  - batched greedy gives exactly the tokens of generate_greedy run on each prompt alone, for every fixture family,
//    with prompts of different lengths and different max_new (so slots are freed and refilled mid-run);
//  - sampling is a function of (seed, request index, token index) and the request's own logits: the same tokens
//    at every --max-batch and whatever the other requests are; top-k = 1 and T -> 0 are greedy;
//  - the sampler's frequencies match softmax / top-k / top-p (binomial tolerance, stated below);
//  - bad options and bad JSONL lines are refused, naming the option or file:line.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/batched_generate.h"
#include "core/error.h"
#include "evals/model_loader.h"
#include "experiments/generate_jsonl.h"
#include "test_util.h"

namespace bmh {
namespace {

namespace fs = std::filesystem;

std::unique_ptr<LanguageModel> load(const std::string& fixture) {
  ModelSpec s;
  s.dir = test::fixture_dir(fixture);
  s.dtype = "fp32";  // bmh generate's default
  return load_model(s);
}

// n requests, prompt lengths 1..17 and max_new 0..7 drawn from `seed`.
std::vector<GenerateRequest> random_requests(int n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<GenerateRequest> out(static_cast<size_t>(n));
  for (auto& r : out) {
    const int T = 1 + int(rng() % 17);
    r.max_new = int(rng() % 8);
    for (int t = 0; t < T; ++t) r.prompt.push_back(int64_t(rng() % uint64_t(vocab)));
  }
  out[0].max_new = 7;  // at least one long request, so others finish and their slots are reused while it runs
  return out;
}

std::vector<int64_t> greedy_alone(LanguageModel& m, const GenerateRequest& r) {
  if (r.max_new == 0) return {};
  Tensor ids = generate_greedy(m, Tensor::from_i64(r.prompt, {1, int64_t(r.prompt.size())}), r.max_new);
  std::vector<int64_t> all = ids.to_i64();
  return std::vector<int64_t>(all.begin() + int64_t(r.prompt.size()), all.end());
}

class BatchedFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(BatchedFixture, GreedyEqualsEachPromptAlone) {
  auto m = load(GetParam());
  const auto reqs = random_requests(9, m->config().vocab_size, 77);
  for (int max_batch : {1, 3, 256}) {
    BatchedGenerateOptions o;
    o.max_batch = max_batch;
    BatchedGenerateStats st;
    const auto res = generate_batched(*m, reqs, o, &st);
    ASSERT_EQ(res.size(), reqs.size());
    EXPECT_TRUE(st.batched);
    EXPECT_EQ(st.slots, std::min<int>(max_batch, int(reqs.size())));
    int64_t want_prefills = 0, total = 0;
    for (size_t r = 0; r < reqs.size(); ++r) {
      EXPECT_EQ(res[r].generated, greedy_alone(*m, reqs[r])) << GetParam() << " request " << r << " max_batch " << max_batch;
      EXPECT_EQ(res[r].finish_reason, "length");
      want_prefills += reqs[r].max_new > 0;
      total += reqs[r].max_new;
    }
    EXPECT_EQ(st.prefills, want_prefills);
    EXPECT_EQ(st.generated_tokens, total);
    // One step advances every busy slot: batched runs need no more steps than the longest request's when every
    // request fits at once, and exactly the sum of (max_new - 1) one at a time.
    if (max_batch == 1) {
      EXPECT_EQ(st.steps, total - want_prefills);
    }
    if (max_batch == 256) {
      EXPECT_EQ(st.steps, 6);  // request 0: 7 tokens, 6 steps after its prefill
    }
  }
}

TEST_P(BatchedFixture, SamplingIndependentOfBatch) {
  auto m = load(GetParam());
  const int V = m->config().vocab_size;
  auto reqs = random_requests(7, V, 91);
  for (auto& r : reqs) r.max_new = std::max(r.max_new, 3);
  BatchedGenerateOptions o;
  o.sampling.temperature = 1.3;
  o.sampling.top_k = 50;
  o.sampling.top_p = 0.95;
  o.sampling.seed = 5;
  o.max_batch = 1;
  const auto ref = generate_batched(*m, reqs, o);
  for (int mb : {2, 3, 7, 256}) {
    o.max_batch = mb;
    const auto got = generate_batched(*m, reqs, o);
    for (size_t r = 0; r < reqs.size(); ++r) EXPECT_EQ(got[r].generated, ref[r].generated) << "max_batch " << mb << " request " << r;
  }
  // Other requests replaced by different prompts: request 3 (same index, same prompt) samples the same tokens.
  auto other = random_requests(7, V, 1234);
  for (auto& r : other) r.max_new = std::max(r.max_new, 3);
  other[3] = reqs[3];
  o.max_batch = 4;
  EXPECT_EQ(generate_batched(*m, other, o)[3].generated, ref[3].generated);
  // A different seed changes the draws (7 requests x >= 3 tokens over 50 candidates: a collision of all is
  // astronomically unlikely).
  o.sampling.seed = 6;
  const auto reseeded = generate_batched(*m, reqs, o);
  bool differs = false;
  for (size_t r = 0; r < reqs.size(); ++r) differs = differs || reseeded[r].generated != ref[r].generated;
  EXPECT_TRUE(differs);
}

TEST_P(BatchedFixture, TopK1AndTinyTemperatureAreGreedy) {
  auto m = load(GetParam());
  const auto reqs = random_requests(5, m->config().vocab_size, 3);
  BatchedGenerateOptions greedy;
  const auto want = generate_batched(*m, reqs, greedy);
  BatchedGenerateOptions k1;
  k1.sampling.temperature = 2.0;
  k1.sampling.top_k = 1;
  k1.sampling.seed = 9;
  BatchedGenerateOptions cold;
  cold.sampling.temperature = 1e-7;  // exp((l - l_max) / T) underflows for every logit below the maximum
  cold.sampling.seed = 9;
  const auto a = generate_batched(*m, reqs, k1), b = generate_batched(*m, reqs, cold);
  for (size_t r = 0; r < reqs.size(); ++r) {
    EXPECT_EQ(a[r].generated, want[r].generated) << r;
    EXPECT_EQ(b[r].generated, want[r].generated) << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BatchedFixture,
                         ::testing::Values("blackmamba-tiny", "blackmamba-tiny-variant", "mamba-tiny-hf",
                                           "mamba-tiny-ssm", "pythia-tiny", "mixtral-tiny", "jamba-tiny"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

TEST(BatchedGenerate, EosStopsASequenceAndFreesItsSlot) {
  auto m = load("mamba-tiny-hf");
  auto reqs = random_requests(4, m->config().vocab_size, 17);
  for (auto& r : reqs) r.max_new = 6;
  const auto plain = generate_batched(*m, reqs, {});
  BatchedGenerateOptions o;
  o.eos = plain[1].generated[2];  // request 1 stops at its third token (or earlier if it came sooner)
  o.max_batch = 2;
  const auto got = generate_batched(*m, reqs, o);
  for (size_t r = 0; r < reqs.size(); ++r) {
    auto it = std::find(plain[r].generated.begin(), plain[r].generated.end(), o.eos);
    const bool stops = it != plain[r].generated.end();
    const std::vector<int64_t> want(plain[r].generated.begin(), stops ? it + 1 : plain[r].generated.end());
    EXPECT_EQ(got[r].generated, want) << r;
    EXPECT_EQ(got[r].finish_reason, stops ? "eos" : "length") << r;
  }
}

TEST(BatchedGenerate, RefusesBadRequestsByIndex) {
  auto m = load("pythia-tiny");  // attention: 256 positions
  auto expect_fail = [&](std::vector<GenerateRequest> reqs, BatchedGenerateOptions o, const std::string& needle) {
    try {
      generate_batched(*m, reqs, o);
      ADD_FAILURE() << "no error; expected one naming " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  GenerateRequest ok{{1, 2, 3}, 4};
  expect_fail({ok, {{}, 3}}, {}, "request 1: the prompt has no tokens");
  expect_fail({ok, {{1, 512}, 3}}, {}, "request 1: prompt: id 512");
  expect_fail({ok, ok, {std::vector<int64_t>(250, 1), 7}}, {}, "request 2: 250 prompt tokens + 7 new tokens exceed");
  BatchedGenerateOptions o;
  o.max_batch = 0;
  expect_fail({ok}, o, "--max-batch 0");
  o = {};
  o.sampling.temperature = -1;
  expect_fail({ok}, o, "--temperature -1");
  o = {};
  o.sampling.top_k = 5;
  expect_fail({ok}, o, "--top-k/--top-p need --temperature > 0");
  o = {};
  o.sampling.temperature = 1;
  o.sampling.top_p = 0;
  expect_fail({ok}, o, "--top-p 0");
  o = {};
  o.eos = 512;
  expect_fail({ok}, o, "--eos 512");
}

// Frequencies of choose_token over many counters against the target distribution. With n draws a frequency's
// standard deviation is sqrt(p(1-p)/n) <= 0.5/sqrt(n); 5 sigma at n = 40000 is 0.0125.
TEST(Sampling, FrequenciesMatchSoftmaxTopKTopP) {
  const std::vector<float> logits = {1.0f, 2.0f, 0.5f, 2.0f, -1.0f};
  const int n = 40000;
  auto freq = [&](SamplingOptions o) {
    std::vector<double> f(logits.size());
    for (int i = 0; i < n; ++i) f[size_t(choose_token(logits.data(), int64_t(logits.size()), o, uint64_t(i) % 97, uint64_t(i) / 97))] += 1.0 / n;
    return f;
  };
  auto softmax = [&](double T, std::vector<int> keep) {
    std::vector<double> p(logits.size());
    double z = 0;
    for (int i : keep) z += p[size_t(i)] = std::exp(logits[size_t(i)] / T);
    for (double& x : p) x /= z;
    return p;
  };
  const double tol = 5 * 0.5 / std::sqrt(double(n));
  auto expect_near = [&](const std::vector<double>& got, const std::vector<double>& want, const char* what) {
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << what << " token " << i;
  };
  SamplingOptions o;
  o.seed = 11;
  o.temperature = 1;
  expect_near(freq(o), softmax(1, {0, 1, 2, 3, 4}), "T=1");
  o.temperature = 0.5;
  expect_near(freq(o), softmax(0.5, {0, 1, 2, 3, 4}), "T=0.5");
  o.temperature = 1;
  o.top_k = 3;  // ties at 2.0 (ids 1, 3) then 1.0 (id 0)
  expect_near(freq(o), softmax(1, {1, 3, 0}), "top-k 3");
  o.top_k = 0;
  // Ordered p: ids 1, 3 (0.3787 each), 0 (0.1393), 2 (0.0845), 4 (0.0189); running sums 0.379, 0.757, 0.896.
  o.top_p = 0.8;  // 0.757 < 0.8 <= 0.896: ids 1, 3, 0
  expect_near(freq(o), softmax(1, {1, 3, 0}), "top-p 0.8");
  o.top_p = 0.7;  // 0.379 < 0.7 <= 0.757: ids 1 and 3
  expect_near(freq(o), softmax(1, {1, 3}), "top-p 0.7");
  o.top_p = 0.3;  // the first token alone (id 1: the first of the tied maxima)
  expect_near(freq(o), {0, 1, 0, 0, 0}, "top-p 0.3");
  // T -> 0: uniform over the tied maxima (ids 1 and 3), never anything else.
  o.top_p = 1;
  o.temperature = 1e-9;
  expect_near(freq(o), {0, 0.5, 0, 0.5, 0}, "T=1e-9");
  // Greedy takes the first maximum (torch.argmax); top-k 1 keeps both tied maxima (HF keeps every score >= the k-th
  // largest), so at equal p it draws them evenly.
  EXPECT_EQ(choose_token(logits.data(), 5, SamplingOptions{}, 0, 0), 1);
  o.temperature = 3;
  o.top_k = 1;
  expect_near(freq(o), {0, 0.5, 0, 0.5, 0}, "top-k 1, tied maxima");
  // A tie at the k-th place: logits 2, 1, 1, 0.5 -> top-k 2 keeps ids 1, 3 (2.0), 0 and 2 (1.0) of this row.
  const std::vector<float> tied = {1.0f, 2.0f, 1.0f, 0.5f, -1.0f};
  o.temperature = 1;
  o.top_k = 2;
  std::vector<double> f(5);
  for (int i = 0; i < n; ++i) f[size_t(choose_token(tied.data(), 5, o, uint64_t(i) % 97, uint64_t(i) / 97))] += 1.0 / n;
  const double z = std::exp(2.0) + 2 * std::exp(1.0);
  expect_near(f, {std::exp(1.0) / z, std::exp(2.0) / z, std::exp(1.0) / z, 0, 0}, "top-k 2 with a tie at the 2nd place");
  // With a unique maximum top-k 1 is greedy.
  const std::vector<float> unique = {1.0f, 2.5f, 0.5f, 2.0f, -1.0f};
  o.top_k = 1;
  for (uint64_t t = 0; t < 50; ++t) EXPECT_EQ(choose_token(unique.data(), 5, o, 3, t), 1);
}

TEST(Sampling, CounterUniformIsAPureFunctionOfItsCounter) {
  EXPECT_EQ(counter_uniform(1, 2, 3), counter_uniform(1, 2, 3));
  EXPECT_NE(counter_uniform(1, 2, 3), counter_uniform(1, 3, 2));
  EXPECT_NE(counter_uniform(1, 2, 3), counter_uniform(2, 2, 3));
  double mean = 0;
  for (uint64_t i = 0; i < 10000; ++i) {
    const double u = counter_uniform(0, i, 0);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    mean += u / 10000;
  }
  EXPECT_NEAR(mean, 0.5, 5 * 0.2887 / 100);  // uniform sd 1/sqrt(12), 5 sigma over 10000 draws
}

TEST(GenerateJsonl, RefusesBadLinesNamingFileAndLine) {
  fs::path dir = fs::temp_directory_path() / ("bmh_genjsonl_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto no_tokenizer = []() -> const Tokenizer& { throw Error("no tokenizer in this test"); };
  const std::string good = "{\"ids\": [1, 2]}\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"ids\": [1, 2]", ":2: "},                                   // truncated JSON
      {"[1, 2]", ":2: expected a JSON object"},
      {"{\"ids\": [1], \"text\": \"a\"}", ":2: give exactly one of"},
      {"{\"max_new_tokens\": 3}", ":2: give exactly one of"},
      {"{\"ids\": [1], \"prompt\": 2}", ":2: unknown key \"prompt\""},
      {"{\"ids\": [1, 2.5]}", ":2: ids[1] = 2.5 is not a token id"},
      {"{\"ids\": [1, -1]}", ":2: ids[1] = -1 is not a token id"},
      {"{\"ids\": [512]}", ":2: ids[0] = 512 is not a token id in the vocabulary [0, 512)"},
      {"{\"ids\": \"1 2\"}", ":2: \"ids\" must be an array"},
      {"{\"ids\": []}", ":2: the prompt has no tokens"},
      {"{\"ids\": [1], \"max_new_tokens\": -2}", ":2: max_new_tokens -2 must be an integer"},
      {"{\"ids\": [1], \"max_new_tokens\": 4294967297}", ":2: max_new_tokens 4294967297"},
      {"{\"text\": 5}", ":2: \"text\" must be a string"},
  };
  for (const auto& [line, needle] : cases) {
    const std::string path = (dir / "p.jsonl").string();
    std::ofstream(path) << good << line << "\n" << good;
    try {
      read_prompts_jsonl(path, 4, 512, no_tokenizer);
      ADD_FAILURE() << "accepted: " << line;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path + needle), std::string::npos) << line << " -> " << e.what();
    }
  }
  const std::string empty = (dir / "empty.jsonl").string();
  std::ofstream(empty) << "\n  \n";
  EXPECT_THROW(read_prompts_jsonl(empty, 4, 512, no_tokenizer), Error);
  EXPECT_THROW(read_prompts_jsonl((dir / "missing.jsonl").string(), 4, 512, no_tokenizer), Error);
  // Blank lines are skipped and per-line max_new_tokens overrides the default.
  const std::string ok = (dir / "ok.jsonl").string();
  std::ofstream(ok) << "{\"ids\": [3]}\n\n{\"ids\": [4, 5], \"max_new_tokens\": 0}\n";
  const auto reqs = read_prompts_jsonl(ok, 4, 512, no_tokenizer);
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].prompt, (std::vector<int64_t>{3}));
  EXPECT_EQ(reqs[0].max_new, 4);
  EXPECT_EQ(reqs[1].prompt, (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(reqs[1].max_new, 0);
  fs::remove_all(dir);
}

// End to end as a user runs it: the output has one line per request in order; a bad line exits non-zero naming
// file:line and leaves no output file.
TEST(GenerateCli, PromptsJsonlInResultsJsonlOut) {
  fs::path dir = fs::temp_directory_path() / ("bmh_gencli_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string fx = test::fixture_dir("blackmamba-tiny"), bmh = BMH_BINARY;
  const std::string in = (dir / "p.jsonl").string(), out = (dir / "o.jsonl").string(), err = (dir / "err").string();
  std::ofstream(in) << "{\"ids\": [5, 6, 7]}\n{\"ids\": [9], \"max_new_tokens\": 2}\n{\"ids\": [1, 2, 3, 4, 5, 6]}\n";
  ASSERT_EQ(std::system((bmh + " generate --model " + fx + " --prompts " + in + " --max-batch 2 --max-new-tokens 4 --out " +
                         out + " > /dev/null").c_str()), 0);
  auto m = load("blackmamba-tiny");
  std::ifstream f(out);
  std::string line;
  std::vector<nlohmann::json> lines;
  while (std::getline(f, line)) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 3u);
  const std::vector<std::vector<int64_t>> prompts = {{5, 6, 7}, {9}, {1, 2, 3, 4, 5, 6}};
  const std::vector<int> max_new = {4, 2, 4};
  for (size_t r = 0; r < 3; ++r) {
    EXPECT_EQ(lines[r]["index"].get<int>(), int(r));
    EXPECT_EQ(lines[r]["prompt_ids"].get<std::vector<int64_t>>(), prompts[r]);
    EXPECT_EQ(lines[r]["generated_ids"].get<std::vector<int64_t>>(), greedy_alone(*m, {prompts[r], max_new[r]}));
    EXPECT_EQ(lines[r]["finish_reason"].get<std::string>(), "length");
    EXPECT_TRUE(lines[r]["text"].is_string());  // ids < 512 lie inside the bundled tokenizer's vocabulary
  }
  fs::remove(out);
  std::ofstream(in, std::ios::app) << "{\"ids\": [1, 2], \"max_new\": 3}\n";
  EXPECT_NE(std::system((bmh + " generate --model " + fx + " --prompts " + in + " --out " + out + " 2> " + err).c_str()), 0);
  std::ifstream e(err);
  const std::string msg((std::istreambuf_iterator<char>(e)), std::istreambuf_iterator<char>());
  EXPECT_NE(msg.find(in + ":4: unknown key \"max_new\""), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(out));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace bmh

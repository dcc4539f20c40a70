// `mpirun -np 2` and `-np 3` bmh eval, perplexity and routing on the seeded tiny BlackMamba preset give the files
// one process gives: results.json metrics equal as parsed doubles and every per-request log-likelihood in
// requests.h5 equal bit for bit (EXPECT_EQ on the doubles: no tolerance, since each rank computes the very calls
// of the one-process plan); rank 0 alone writes; a multi-rank run killed mid-way resumes from rank 0's journal,
// with another number of ranks, to the same results. Registered only when CMake found MPI (tests/CMakeLists.txt).
// Small on purpose (CI: 2 cores, oversubscribed ranks): four tasks at --limit 6 and a 64-token budget, so every
// rank gets several calls.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "evals/distributed.h"
#include "evals/h5_writer.h"
#include "tests/cli_test_util.h"

namespace bmh {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kPreset = " --preset tiny-blackmamba-50k --seed 7";
const std::string kTasks = "piqa,lambada_openai,winogrande,arc_easy";
const std::string kEvalAnyBudget =
    "eval" + kPreset + " --tasks " + kTasks + " --limit 6 --bootstrap-iters 1000 --budget-check 4 --no-progress";
const std::string kEval = kEvalAnyBudget + " --token-budget 64";

using test::CmdResult;
using test::count_lines;
using test::read_json;
using test::run_cmd;

std::string mpirun(int np) {
  return std::string(BMH_MPIEXEC) + " --allow-run-as-root --oversubscribe -np " + std::to_string(np) + " ";
}
CmdResult bmh(const std::string& args, int np = 1) {
  return run_cmd((np > 1 ? mpirun(np) : std::string()) + BMH_BINARY + " " + args);
}

fs::path scratch(const std::string& name) { return test::scratch_dir("bmh_mpi", name); }

std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// The fields of an eval run that must not depend on the ranks: metrics, samples, per-request and per-doc results.
void expect_same_eval(const fs::path& a, const fs::path& b) {
  json ja = read_json(a / "results.json"), jb = read_json(b / "results.json");
  EXPECT_EQ(ja["results"], jb["results"]);
  EXPECT_EQ(ja["n-samples"], jb["n-samples"]);
  for (const std::string t : {"piqa", "lambada_openai", "winogrande", "arc_easy"})
    for (const std::string d : {"requests/loglikelihood", "requests/is_greedy", "docs/acc"}) {
      std::vector<double> va = h5::read_doubles((a / "requests.h5").string(), t + "/" + d);
      EXPECT_FALSE(va.empty()) << t << "/" << d;
      EXPECT_EQ(va, h5::read_doubles((b / "requests.h5").string(), t + "/" + d)) << t << "/" << d;
    }
}

// "eval: rank 1 of 3: 4 calls, 17 requests, 250 tokens": every rank got work.
void expect_every_rank_worked(const std::string& output, int np) {
  for (int r = 0; r < np; ++r) {
    const std::string needle = "rank " + std::to_string(r) + " of " + std::to_string(np) + ": ";
    size_t at = output.find(needle);
    ASSERT_NE(at, std::string::npos) << output;
    EXPECT_NE(output.compare(at + needle.size(), 8, "0 calls,"), 0) << output;
  }
}

// Children of a process, from /proc/<pid>/task/<tid>/children over its threads.
std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  for (const auto& t : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    std::ifstream f(t.path() / "children");
    pid_t c;
    while (f >> c) out.push_back(c);
  }
  return out;
}

class MpiParity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    one_ = new fs::path(scratch("one"));
    CmdResult r = bmh(kEval + " --out " + one_->string());
    ASSERT_EQ(r.status, 0) << r.output;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*one_);
    delete one_;
  }
  static fs::path* one_;
};
fs::path* MpiParity::one_ = nullptr;

TEST_F(MpiParity, EvalOnTwoAndThreeRanksEqualsOneProcess) {
  for (int np : {2, 3}) {
    fs::path out = scratch("np" + std::to_string(np));
    CmdResult r = bmh(kEval + " --out " + out.string(), np);
    ASSERT_EQ(r.status, 0) << r.output;
    expect_every_rank_worked(r.output, np);
    EXPECT_EQ(listing(out), (std::vector<std::string>{"requests.h5", "results.json"}));  // no journal, no rank files
    expect_same_eval(*one_, out);
    json j = read_json(out / "results.json");
    const json& sc = j["bmh"]["scoring"];
    EXPECT_EQ(sc["calls"], read_json(*one_ / "results.json")["bmh"]["scoring"]["calls"]);
    ASSERT_EQ(sc["ranks"].size(), size_t(np));  // each rank's share, summing to the one-process plan
    int64_t calls = 0, tokens = 0;
    for (const json& rk : sc["ranks"]) calls += rk["calls"].get<int64_t>(), tokens += rk["tokens"].get<int64_t>();
    EXPECT_EQ(calls, sc["calls"].get<int64_t>());
    EXPECT_EQ(tokens, sc["tokens_computed"].get<int64_t>());
    // The table is printed once, by rank 0.
    size_t first = r.output.find("wrote "), again = r.output.find("wrote ", first + 1);
    EXPECT_NE(first, std::string::npos);
    EXPECT_EQ(again, std::string::npos) << r.output;
    fs::remove_all(out);
  }
}

TEST(MpiDeterministic, DeterministicEvalOnTwoRanksEqualsOneProcessAndAKilledRunResumesOnThree) {
  // --deterministic: the resumed run packs the rest differently (default mode may differ in the last bits then:
  // the budget check measures ~1e-8 here) and must still give bit-identical results.
  const std::string det = kEval + " --deterministic";
  const std::string det_small = kEvalAnyBudget + " --token-budget 16 --deterministic";
  fs::path one = scratch("det1"), two = scratch("det2"), killed = scratch("killed");
  CmdResult r1 = bmh(det + " --out " + one.string());
  ASSERT_EQ(r1.status, 0) << r1.output;
  CmdResult r2 = bmh(det + " --out " + two.string(), 2);
  ASSERT_EQ(r2.status, 0) << r2.output;
  expect_same_eval(one, two);

  const std::string cmd = mpirun(2) + BMH_BINARY + " " + det_small + " --out " + killed.string();
  const std::string log = killed.string() + ".log";
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::freopen("/dev/null", "r", stdin);
    std::freopen(log.c_str(), "w", stdout);
    std::freopen(log.c_str(), "a", stderr);
    ::execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), (char*)nullptr);
    ::_exit(127);
  }
  const fs::path journal = killed / "journal.bmhj";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(3);
  int st = 0;
  pid_t ended = 0;
  while (count_lines(journal) < 1 + 12 && std::chrono::steady_clock::now() < deadline &&
         (ended = ::waitpid(pid, &st, WNOHANG)) == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(ended, 0) << "the run ended before it could be killed: " << std::ifstream(log).rdbuf();
  // kill -9 to every process of the run at once: the ranks (mpirun's children, in process groups of their own)
  // first, then mpirun.
  std::vector<pid_t> ranks = children_of(pid);
  EXPECT_EQ(ranks.size(), 2u);
  for (pid_t r : ranks) ::kill(r, SIGKILL);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &st, 0);
  for (pid_t r : ranks)  // reparented: wait until they are gone
    while (::kill(r, 0) == 0 && fs::exists("/proc/" + std::to_string(r) + "/exe"))
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_FALSE(fs::exists(killed / "results.json"));
  const size_t journaled = count_lines(journal) - 1;
  EXPECT_GE(journaled, 12u);
  EXPECT_LT(journaled, 54u);

  CmdResult resumed = bmh(det + " --out " + killed.string(), 3);
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming: "), std::string::npos) << resumed.output;
  expect_same_eval(one, killed);
  EXPECT_FALSE(fs::exists(journal));
  for (const fs::path& d : {one, two, killed}) fs::remove_all(d);
  fs::remove(log);
}

TEST(MpiPerplexity, TwoAndThreeRanksEqualOneProcess) {
  // Six WikiText pages cut from the bundled test split: about 2k tokens, so the CI run stays short.
  fs::path dir = scratch("ppl");
  fs::create_directories(dir);
  {
    std::ifstream in(std::string(BMH_SOURCE_DIR) + "/data/text/wiki.test.raw");
    std::ofstream text(dir / "wiki.test.raw");
    std::string line;
    int pages = 0;
    while (std::getline(in, line)) {
      if (line.rfind(" = ", 0) == 0 && line.rfind(" = = ", 0) != 0 && ++pages > 6) break;
      if (pages > 0 && line.size() < 200) text << line << "\n";  // short lines only: small pages
    }
  }
  const std::string args = "perplexity" + kPreset + " --text " + (dir / "wiki.test.raw").string() +
                           " --token-budget 128 --no-progress --out ";
  CmdResult r = bmh(args + (dir / "one").string());
  ASSERT_EQ(r.status, 0) << r.output;
  json j1 = read_json(dir / "one" / "results.json");
  EXPECT_EQ(j1["n-samples"]["wikitext"]["effective"], 6);
  for (int np : {2, 3}) {
    fs::path out = dir / ("np" + std::to_string(np));
    CmdResult rn = bmh(args + out.string(), np);
    ASSERT_EQ(rn.status, 0) << rn.output;
    expect_every_rank_worked(rn.output, np);
    json jn = read_json(out / "results.json");
    EXPECT_EQ(j1["results"], jn["results"]);
    EXPECT_EQ(j1["bmh"]["doc_loglikelihood"], jn["bmh"]["doc_loglikelihood"]);
    EXPECT_EQ(j1["bmh"]["windows"], jn["bmh"]["windows"]);
    EXPECT_EQ(listing(out), (std::vector<std::string>{"results.json"}));
  }
  fs::remove_all(dir);
}

TEST(MpiRouting, TwoAndThreeRanksEqualOneProcess) {
  const std::string args = "routing" + kPreset + " --text " + std::string(BMH_SOURCE_DIR) +
                           "/data/text/wiki.test.raw --seq-len 32 --sequences 6 --batch 1 --out ";
  fs::path dir = scratch("routing");
  fs::create_directories(dir);
  CmdResult r = bmh(args + (dir / "one.json").string());
  ASSERT_EQ(r.status, 0) << r.output;
  json j1 = read_json(dir / "one.json");
  ASSERT_FALSE(j1["layers"].empty());
  for (int np : {2, 3}) {
    const fs::path out = dir / ("np" + std::to_string(np) + ".json");
    CmdResult rn = bmh(args + out.string(), np);
    ASSERT_EQ(rn.status, 0) << rn.output;
    EXPECT_EQ(j1, read_json(out));
  }
  EXPECT_EQ(listing(dir), (std::vector<std::string>{"np2.json", "np3.json", "one.json"}));
  fs::remove_all(dir);
}

TEST(MpiShare, LongestFirstToTheLeastLoadedRank) {
  // Costs 9 7 6 5 4 3 on 3 ranks: 9->0, 7->1, 6->2, then 5->2 (load 11), 4->1 (11), 3->0 (12); ties: lower rank.
  EXPECT_EQ(dist::assign_by_tokens({5, 9, 3, 7, 6, 4}, 3), (std::vector<int>{2, 0, 0, 1, 2, 1}));
  EXPECT_EQ(dist::assign_by_tokens({4, 4, 4, 4}, 2), (std::vector<int>{0, 1, 0, 1}));
  EXPECT_EQ(dist::assign_by_tokens({1, 2}, 1), (std::vector<int>{0, 0}));
  EXPECT_EQ(dist::assign_by_tokens({1}, 3), (std::vector<int>{0}));
}

TEST(MpiRefusal, UnshardedCommandsAreRefusedOnSeveralRanks) {
  CmdResult r = bmh("forward" + kPreset + " --help", 2);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("bmh forward does not shard over MPI ranks"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace bmh

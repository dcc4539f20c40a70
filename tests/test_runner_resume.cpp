// `bmh run` end to end on a small experiment: results.json/results.h5 contents, resume after a SIGKILL
// mid-run, reruns only what changed, and bad experiment files rejected before anything runs.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "evals/h5_writer.h"

namespace bmh {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Out {
  int rc = 0;
  std::string text;
};

Out run_bmh(const std::string& args) {
  const std::string cmd = std::string(BMH_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  Out o;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) o.text.append(buf, n);
  const int st = pclose(p);
  o.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return o;
}

json small_experiment() {
  return json::parse(R"({
    "name": "small",
    "models": [{"name": "tiny", "preset": "tiny-blackmamba-50k", "seed": 3}],
    "steps": ["info", "forward", "generate", "flops", "latency", "routing", "eval"],
    "forward": {"tokens": 48},
    "generate": {"tokens": 4},
    "flops": {"contexts": [64, 256]},
    "latency": {"prompt_lengths": [8, 32], "decode_prompt": 4, "decode_tokens": 6, "warmup": 1, "repeats": 2},
    "routing": {"seq_len": 32, "batch": 2,
                "sources": [{"name": "wiki", "file": "data/text/wiki.test.raw", "sequences": 3},
                            {"name": "piqa", "task": "piqa", "limit": 2}]},
    "eval": {"tasks": ["piqa"], "limit": 2, "bootstrap_iters": 10}
  })");
}

std::string write_config(const std::string& dir, const json& j, const std::string& name = "exp.json") {
  fs::create_directories(dir);
  const std::string path = dir + "/" + name;
  std::ofstream(path) << j.dump(1);
  return path;
}

std::string fresh_dir(const std::string& name) {
  fs::path p = fs::path(testing::TempDir()) / ("bmh_run_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return json::parse(in);
}

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

// The parts of a results.json that must not depend on timing: everything but times and dates.
json deterministic(const json& results) {
  json out;
  for (auto it = results["models"].begin(); it != results["models"].end(); ++it)
    for (const char* step : {"info", "forward", "generate", "flops", "routing", "eval"}) {
      json s = it.value()["steps"][step]["summary"];
      s.erase("ms");
      s.erase("ms_per_token");
      s.erase("load_seconds_first_use");
      out[it.key()][step] = s;
    }
  return out;
}

TEST(RunnerResume, CompleteRunThenCachedRerun) {
  const std::string dir = fresh_dir("complete");
  const std::string cfg = write_config(dir, small_experiment());
  Out a = run_bmh("run " + cfg + " --out " + dir + "/results --no-plots");
  ASSERT_EQ(a.rc, 0) << a.text;
  EXPECT_EQ(count(a.text, " ok ("), 7) << a.text;
  const std::string res = dir + "/results/small";
  json r = read_json(res + "/results.json");
  for (const char* step : {"info", "forward", "generate", "flops", "latency", "routing", "eval"})
    EXPECT_EQ(r["models"]["tiny"]["steps"][step]["status"], "ok") << step;
  EXPECT_EQ(r["models"]["tiny"]["arch"], "blackmamba");
  EXPECT_TRUE(r["models"]["tiny"]["steps"]["generate"]["summary"]["parity_ok"].get<bool>());
  EXPECT_EQ(r["models"]["tiny"]["steps"]["eval"]["summary"]["tasks"]["piqa"]["documents"], 2);
  // results.h5 holds every step's arrays with their attributes.
  const std::string h5 = res + "/results.h5";
  Shape s;
  h5::read_doubles(h5, "/tiny/routing/tokens_per_expert", &s);
  EXPECT_EQ(s, (Shape{2, 8}));
  const double routed = r["models"]["tiny"]["steps"]["routing"]["summary"]["tokens"];
  double sum = 0;
  for (double x : h5::read_doubles(h5, "/tiny/routing/tokens_per_expert")) sum += x;
  EXPECT_EQ(sum, 2 * routed);  // every routed token counted once in each of the 2 MoE layers
  EXPECT_EQ(h5::read_doubles(h5, "/tiny/latency/prefill_ms", &s).size(), 4u);
  EXPECT_EQ(s, (Shape{2, 2}));
  EXPECT_EQ(h5::read_string_attr(h5, "/tiny/latency/prefill_ms", "units"), "ms");
  EXPECT_EQ(h5::read_doubles(h5, "/tiny/flops/contexts"), (std::vector<double>{64, 256}));
  EXPECT_EQ(h5::read_strings(h5, "/models"), (std::vector<std::string>{"tiny"}));
  EXPECT_EQ(h5::read_string_attr(h5, "/tiny", "arch"), "blackmamba");
  EXPECT_TRUE(h5::exists(h5, "/tiny/eval/piqa/doc_acc"));

  Out b = run_bmh("run " + cfg + " --out " + dir + "/results --no-plots");
  ASSERT_EQ(b.rc, 0) << b.text;
  EXPECT_EQ(count(b.text, " cached (ok)"), 7) << b.text;
  EXPECT_EQ(count(b.text, "loading"), 0) << b.text;  // nothing ran, so no model was built
  EXPECT_EQ(deterministic(read_json(res + "/results.json")), deterministic(r));

  // Changing one step's options reruns that step only.
  json changed = small_experiment();
  changed["latency"]["repeats"] = 3;
  write_config(dir, changed);
  Out c = run_bmh("run " + cfg + " --out " + dir + "/results --no-plots");
  ASSERT_EQ(c.rc, 0) << c.text;
  EXPECT_EQ(count(c.text, " cached (ok)"), 6) << c.text;
  EXPECT_EQ(count(c.text, "latency   ok ("), 1) << c.text;
  EXPECT_EQ(h5::read_doubles(h5, "/tiny/latency/prefill_ms").size(), 6u);

  // --fresh reruns the selected steps; the merged results keep every other step.
  Out d = run_bmh("run " + cfg + " --out " + dir + "/results --no-plots --fresh --steps flops");
  ASSERT_EQ(d.rc, 0) << d.text;
  EXPECT_EQ(count(d.text, " ok ("), 1) << d.text;
  EXPECT_EQ(count(d.text, "cached"), 0) << d.text;
  json after = read_json(res + "/results.json");
  for (const char* step : {"info", "forward", "generate", "flops", "latency", "routing", "eval"})
    EXPECT_EQ(after["models"]["tiny"]["steps"][step]["status"], "ok") << step;
  EXPECT_TRUE(h5::exists(h5, "/tiny/routing/cv"));
}

TEST(RunnerResume, ResumesAfterSigkill) {
  const std::string dir = fresh_dir("kill");
  const std::string cfg = write_config(dir, small_experiment());
  const std::string out = dir + "/results";
  const std::string parts = out + "/small/parts/tiny";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::freopen((dir + "/first.log").c_str(), "w", stdout);
    std::freopen((dir + "/first.log").c_str(), "a", stderr);
    execl(BMH_BINARY, BMH_BINARY, "run", cfg.c_str(), "--out", out.c_str(), "--no-plots", nullptr);
    _exit(127);
  }
  // Kill it as soon as the first step is committed (the second is then running).
  const auto t0 = std::chrono::steady_clock::now();
  while (!fs::exists(parts + "/info.json") && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(120))
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  kill(pid, SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFSIGNALED(st)) << "the run finished before it could be killed";
  ASSERT_TRUE(fs::exists(parts + "/info.json"));
  EXPECT_FALSE(fs::exists(out + "/small/results.json"));  // merged results appear only at the end
  int done = 0;
  for (const auto& e : fs::directory_iterator(parts)) done += e.path().extension() == ".json";

  Out b = run_bmh("run " + cfg + " --out " + out + " --no-plots");
  ASSERT_EQ(b.rc, 0) << b.text;
  EXPECT_EQ(count(b.text, " cached (ok)"), done) << b.text;
  EXPECT_EQ(count(b.text, " ok ("), 7 - done) << b.text;
  EXPECT_NE(b.text.find("info      cached"), std::string::npos) << b.text;
  json r = read_json(out + "/small/results.json");
  for (const char* step : {"info", "forward", "generate", "flops", "latency", "routing", "eval"})
    EXPECT_EQ(r["models"]["tiny"]["steps"][step]["status"], "ok") << step;
  for (const auto& e : fs::recursive_directory_iterator(out))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << "stray temp file " << e.path();

  // The resumed results equal those of an uninterrupted run.
  const std::string dir2 = fresh_dir("kill_reference");
  Out c = run_bmh("run " + cfg + " --out " + dir2 + " --no-plots");
  ASSERT_EQ(c.rc, 0) << c.text;
  EXPECT_EQ(deterministic(r), deterministic(read_json(dir2 + "/small/results.json")));
}

TEST(RunnerResume, BadExperimentsFailBeforeAnythingRuns) {
  const std::string dir = fresh_dir("bad");
  struct Case {
    std::string what;
    std::function<void(json&)> edit;
    std::string message;
  };
  std::vector<Case> cases = {
      {"unknown step", [](json& j) { j["steps"].push_back("finetune"); }, "unknown step 'finetune'"},
      {"unknown model step", [](json& j) { j["models"][0]["steps"] = {"info", "benchmark"}; }, "unknown step 'benchmark'"},
      {"unknown preset", [](json& j) { j["models"][0]["preset"] = "blackmamba-9b"; }, "unknown preset 'blackmamba-9b'"},
      {"unknown key", [](json& j) { j["latency"]["repeat"] = 3; }, "unknown key 'repeat'"},
      {"unknown task", [](json& j) { j["eval"]["tasks"] = {"mmlu"}; }, "mmlu"},
      {"missing text", [](json& j) { j["routing"]["sources"][0]["file"] = "data/text/none.txt"; }, "none.txt"},
      {"duplicate model", [](json& j) { j["models"].push_back(j["models"][0]); }, "two models are named 'tiny'"},
      {"preset and dir", [](json& j) { j["models"][0]["dir"] = "x"; }, "exactly one of 'preset', 'dir' and 'config'"},
      {"cpu dtype", [](json& j) { j["models"][0]["dtype"] = "bf16"; }, "not one of the cpu backend's"},
      {"config without train", [](json& j) { j["models"][0].erase("preset"); j["models"][0]["config"] = "experiments/models/blackmamba-d64.json"; },
       "needs the 'train' step"},
      {"train key", [](json& j) { j["steps"].push_back("train");
         j["train"] = {{"data", {{"text", "data/text/tinyshakespeare.input.txt"}}}, {"steps", 5}, {"lrate", 1}}; },
       "unknown key 'lrate'"},
      {"train seed", [](json& j) { j["train"] = {{"seed", 3}}; }, "'seed' belongs in each model entry"},
      {"models_dir", [](json& j) { j["models"][0].erase("preset"); j["models"][0]["dir"] = "${models_dir}/BM"; },
       "needs --models-dir"},
  };
  for (const auto& c : cases) {
    json j = small_experiment();
    c.edit(j);
    const std::string cfg = write_config(dir, j);
    Out o = run_bmh("run " + cfg + " --out " + dir + "/results --no-plots");
    EXPECT_NE(o.rc, 0) << c.what;
    EXPECT_NE(o.text.find("bmh: error:"), std::string::npos) << c.what << ": " << o.text;
    EXPECT_NE(o.text.find(c.message), std::string::npos) << c.what << ": " << o.text;
    EXPECT_FALSE(fs::exists(dir + "/results")) << c.what << ": something was written";
  }
  Out o = run_bmh("run " + write_config(dir, small_experiment()) + " --models nobody --out " + dir + "/results");
  EXPECT_NE(o.rc, 0);
  EXPECT_NE(o.text.find("unknown model 'nobody'"), std::string::npos) << o.text;
}

TEST(RunnerResume, MissingCheckpointIsReportedAndTheRestRuns) {
  const std::string dir = fresh_dir("missing");
  json j = small_experiment();
  j["steps"] = {"info", "flops"};
  j["models"].push_back({{"name", "bm-2.8b"}, {"dir", "${models_dir}/BlackMamba-2.8B"},
                         {"download", "Zyphra/BlackMamba-2.8B"}});
  const std::string cfg = write_config(dir, j);
  Out o = run_bmh("run " + cfg + " --models-dir " + dir + "/nowhere --out " + dir + "/results --no-plots");
  ASSERT_EQ(o.rc, 0) << o.text;
  EXPECT_NE(o.text.find("missing checkpoint: bm-2.8b"), std::string::npos) << o.text;
  EXPECT_NE(o.text.find("Zyphra/BlackMamba-2.8B"), std::string::npos) << o.text;
  json r = read_json(dir + "/results/small/results.json");
  EXPECT_EQ(r["models"]["bm-2.8b"]["steps"]["info"]["status"], "missing");
  EXPECT_EQ(r["models"]["tiny"]["steps"]["flops"]["status"], "ok");
}

}  // namespace
}  // namespace bmh

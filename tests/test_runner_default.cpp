// The README's main job: `bmh run` with no experiment file runs experiments/default.json end to end (all four
// architectures, every step), prints the summary, and writes results.json, results.h5 (readable by h5py) and the
// plots.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "evals/h5_writer.h"

namespace bmh {
namespace {

namespace fs = std::filesystem;

std::pair<int, std::string> sh(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

TEST(RunnerDefault, RunsEndToEndWithSummaryAndPlots) {
  const fs::path dir = fs::path(testing::TempDir()) / "bmh_default_run";
  fs::remove_all(dir);
  fs::create_directories(dir);
  // From another directory, to show the run finds its data wherever it is started.
  auto [rc, out] = sh("cd '" + dir.string() + "' && " + BMH_BINARY + " run");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("Summary: default"), std::string::npos) << out;
  EXPECT_NE(out.find("Zero-shot"), std::string::npos) << out;
  const fs::path res = dir / "results" / "default";
  std::ifstream in(res / "results.json");
  ASSERT_TRUE(in.good());
  nlohmann::json j = nlohmann::json::parse(in);
  const std::vector<std::string> models = {"blackmamba", "mamba", "transformer", "transformer-moe"};
  const std::vector<std::string> archs = {"blackmamba", "mamba", "transformer", "transformer-moe"};
  for (size_t i = 0; i < models.size(); ++i) {
    const auto& m = j["models"][models[i]];
    EXPECT_EQ(m["arch"], archs[i]);
    for (const char* step : {"info", "forward", "generate", "flops", "latency", "eval"})
      EXPECT_EQ(m["steps"][step]["status"], "ok") << models[i] << " " << step;
    const bool moe = models[i] == "blackmamba" || models[i] == "transformer-moe";
    EXPECT_EQ(m["steps"]["routing"]["status"], moe ? "ok" : "skipped") << models[i];
    EXPECT_TRUE(m["steps"]["generate"]["summary"]["parity_ok"].get<bool>()) << models[i];
    EXPECT_EQ(m["steps"]["eval"]["summary"]["tasks"].size(), 7u) << models[i];
  }
  // Same active parameters up to the non-embedding part (the embedding dominates these tiny shapes).
  const double a0 = j["models"]["blackmamba"]["steps"]["info"]["summary"]["params_active"];
  for (const auto& name : models)
    EXPECT_NEAR(j["models"][name]["steps"]["info"]["summary"]["params_active"].get<double>(), a0, 0.02 * a0) << name;
  const std::string h5 = (res / "results.h5").string();
  EXPECT_TRUE(h5::exists(h5, "/blackmamba/routing/fraction_per_expert"));
  EXPECT_TRUE(h5::exists(h5, "/transformer/latency/decode_median"));
  EXPECT_TRUE(h5::exists(h5, "/mamba/flops/kv_cache_bytes"));

  // h5py reads it and the plots exist, where the plotting Python is installed (scripts/setup.sh).
  if (sh("/usr/bin/python3 -c 'import h5py, matplotlib'").first != 0)
    GTEST_SKIP() << "/usr/bin/python3 lacks h5py/matplotlib: plots not checked";
  auto [prc, pout] = sh("/usr/bin/python3 -c \"import h5py; f = h5py.File('" + h5 +
                        "', 'r'); print(f['blackmamba/routing/cv'].attrs['description'], f['models'].shape)\"");
  EXPECT_EQ(prc, 0) << pout;
  EXPECT_NE(pout.find("coefficient of variation"), std::string::npos) << pout;
  for (const char* png : {"routing_load.png", "routing_cv.png", "routing_transitions_blackmamba.png",
                          "routing_breakdown_transformer-moe.png", "latency.png", "flops.png", "memory.png",
                          "accuracy_vs_flops.png"})
    EXPECT_GT(fs::exists(res / png) ? fs::file_size(res / png) : 0, 10000u) << png;
}

}  // namespace
}  // namespace bmh

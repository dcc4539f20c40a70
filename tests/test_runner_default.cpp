// The README's main job: `bmh run` with no experiment file runs experiments/default.json end to end: the
// equal-FLOPs training study (four architectures matched in active non-embedding parameters, two seeds each,
// trained on tinyshakespeare bytes to the same training FLOPs), then info, FLOPs and latency of the trained
// checkpoints; it prints the summary with the winner per FLOP and writes results.json, results.h5 (readable by
// h5py) and the plots.
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

TEST(RunnerDefault, TrainsEveryArchitectureToEqualFlopsWithSummaryAndPlots) {
  const fs::path dir = fs::path(testing::TempDir()) / "bmh_default_run";
  fs::remove_all(dir);
  fs::create_directories(dir);
  // From another directory, to show the run finds its data wherever it is started.
  auto [rc, out] = sh("cd '" + dir.string() + "' && " + BMH_BINARY + " run");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("Summary: default"), std::string::npos) << out;
  EXPECT_NE(out.find("Lowest held-out loss per training FLOP (equal FLOPs): "), std::string::npos) << out;
  const fs::path res = dir / "results" / "default";
  std::ifstream in(res / "results.json");
  ASSERT_TRUE(in.good());
  nlohmann::json j = nlohmann::json::parse(in);
  const double budget = j["config"]["train"]["flops"];
  const std::vector<std::string> archs = {"blackmamba", "mamba", "transformer", "transformer-moe"};
  const double act0 = j["models"]["blackmamba-s1"]["steps"]["train"]["summary"]["params_active_non_embedding"];
  for (const auto& arch : archs)
    for (const char* seed : {"-s1", "-s2"}) {
      const std::string name = arch + seed;
      const auto& m = j["models"][name];
      EXPECT_EQ(m["arch"], arch) << name;
      for (const char* step : {"train", "info", "flops", "latency"})
        EXPECT_EQ(m["steps"][step]["status"], "ok") << name << " " << step;
      const auto& t = m["steps"]["train"]["summary"];
      // Every architecture and seed ends below the unigram entropy of the held-out text.
      EXPECT_LT(t["final_val_loss"].get<double>(), t["val_unigram_entropy"].get<double>()) << name;
      EXPECT_TRUE(t["below_unigram_entropy"].get<bool>()) << name;
      // Equal training FLOPs: the budget, rounded up to whole optimizer steps.
      const double spent = t["training_flops"], per_step = spent / t["steps"].get<double>();
      EXPECT_GE(spent, budget) << name;
      EXPECT_LT(spent, budget + per_step) << name;
      // Matched in active non-embedding parameters (not in embedding-dominated totals): within 1%.
      EXPECT_NEAR(t["params_active_non_embedding"].get<double>(), act0, 0.01 * act0) << name;
      // The later steps measured the trained checkpoint, in the family's own layout.
      EXPECT_EQ(m["steps"]["info"]["summary"]["family"],
                arch == "blackmamba" ? "zyphra-blackmamba" : arch == "mamba" ? "hf-mamba" : "bmh") << name;
    }
  const std::string h5 = (res / "results.h5").string();
  EXPECT_TRUE(h5::exists(h5, "/blackmamba-s1/train/eval_loss"));
  EXPECT_TRUE(h5::exists(h5, "/transformer-moe-s2/train/expert_load"));
  EXPECT_TRUE(h5::exists(h5, "/transformer-s1/latency/decode_median"));
  EXPECT_TRUE(h5::exists(h5, "/mamba-s1/flops/kv_cache_bytes"));

  // h5py reads it and the plots exist, where the plotting Python is installed: once scripts/setup.sh has installed
  // Debian's python3-h5py and python3-matplotlib, a Python that cannot import them is a failure, not a skip.
  const bool plotting_installed =
      sh("dpkg-query -W -f='${Status}' python3-h5py python3-matplotlib 2>/dev/null | grep -c 'install ok installed'")
          .second.find('2') != std::string::npos;
  if (sh("/usr/bin/python3 -c 'import h5py, matplotlib'").first != 0) {
    if (plotting_installed) FAIL() << "python3-h5py/matplotlib are installed but /usr/bin/python3 cannot import them";
    GTEST_SKIP() << "python3-h5py/python3-matplotlib not installed (scripts/setup.sh installs them): plots not checked";
  }
  auto [prc, pout] = sh("/usr/bin/python3 -c \"import h5py; f = h5py.File('" + h5 +
                        "', 'r'); print(f['blackmamba-s1/train/load_cv'].attrs['description'], f['models'].shape)\"");
  EXPECT_EQ(prc, 0) << pout;
  EXPECT_NE(pout.find("coefficient of variation"), std::string::npos) << pout;
  for (const char* png : {"training_loss.png", "training_load.png", "latency.png", "flops.png", "memory.png"})
    EXPECT_GT(fs::exists(res / png) ? fs::file_size(res / png) : 0, 10000u) << png;
}

}  // namespace
}  // namespace bmh

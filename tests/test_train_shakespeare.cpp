// bmh train on the reference backward, end to end on the bundled tinyshakespeare (bytes):
//  * every architecture of the equal-FLOPs study (experiments/models/, Mixtral and Jamba included) ends a short
//    run with a held-out loss below the held-out text's unigram entropy (the best a model blind to context can
//    do); the embedded default run (tests/test_runner_default.cpp) asserts the same for two seeds of each of its
//    four (not Mixtral and Jamba) at its larger budget;
//  * the checkpoint it writes (each family's own layout) loads through load_model, as bmh forward does, and gives
//    logits identical to the trained parameters';
//  * a `bmh train` killed with SIGKILL after its first checkpoint and run again finishes with exactly the
//    uninterrupted run's curve.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <tuple>

#include "evals/model_loader.h"
#include "reference/model.h"
#include "train/trainer.h"

namespace bmh::train {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kRoot = std::string(BMH_TEST_DIR) + "/..";
const std::string kText = kRoot + "/data/text/tinyshakespeare.input.txt";

json short_run(const std::string& model_config, uint64_t seed) {
  return {{"config", kRoot + "/experiments/models/" + model_config}, {"seed", seed},
          {"data", {{"text", kText}, {"tokenizer", "bytes"}, {"val_fraction", 0.1}}},
          {"seq_len", 64}, {"batch", 4}, {"steps", 100}, {"lr", 4e-3}, {"min_lr", 4e-4}, {"warmup", 5},
          {"log_every", 10}, {"eval_every", 50}, {"eval_batches", 2}};
}

TEST(TrainShakespeare, EveryArchitectureAndSeedBeatsTheUnigramEntropy) {
  const fs::path root = fs::path(testing::TempDir()) / "bmh_train_shakespeare";
  fs::remove_all(root);
  const TrainableFactory factory = [](const ModelConfig& c, const TensorMap& w) {
    return make_trainable(c, w, "cpu", "fp32");
  };
  std::unique_ptr<TokenData> data;
  for (const char* arch : {"blackmamba-d64.json", "mamba-d60.json", "transformer-d64.json", "transformer-moe-d64.json",
                           "mixtral-d64.json", "jamba-d64.json"})
    for (uint64_t seed : {1}) {  // the default run (tests/test_runner_default.cpp) checks two seeds of each
      const TrainConfig c = train_config_from_json(short_run(arch, seed), arch);
      if (!data) data = std::make_unique<TokenData>(TokenData::load(c.data));
      TrainRunOptions opt;
      opt.out_dir = (root / (std::string(arch) + std::to_string(seed))).string();
      const TrainOutcome t = run_training(c, *data, factory, opt);
      const double loss = t.summary["final_val_loss"], h1 = t.summary["val_unigram_entropy"];
      // tinyshakespeare's held-out bytes: H1 = 3.337 nats. The transformers sit near H1 for their first few
      // dozen steps before they use context (and the MoE ones are measured with the inference routing, not the
      // Sinkhorn routing they trained with); after 100 steps of 256 tokens all six are below it (observed
      // 2.45-3.17; Mixtral 3.17, Jamba 2.53). The claim is only that context is used: loss < H1.
      EXPECT_LT(loss, h1) << arch << " seed " << seed;
      EXPECT_LT(loss, t.log.front().val_loss) << arch;  // and it learned from its initialisation
      std::printf("  %-26s seed %d: held-out %.4f, unigram entropy %.4f, %.1f s\n", arch, int(seed), loss, h1,
                  t.seconds);
      if (seed != 1) continue;
      // The checkpoint, read as bmh forward reads a model directory, is exactly the trained model.
      ModelSpec spec;
      spec.dir = opt.out_dir + "/checkpoint";
      std::unique_ptr<LanguageModel> loaded = load_model(spec);
      EXPECT_EQ(loaded->config().family, t.summary["family"].get<std::string>());
      std::unique_ptr<LanguageModel> direct = ref::make_reference_model(t.cfg, t.parameters, "fp32");
      const Tensor ids = data->val_batches(1, 2, 24)[0];
      const std::vector<float> a = loaded->forward(ids).logits.to_f32(), b = direct->forward(ids).logits.to_f32();
      ASSERT_EQ(a.size(), b.size());
      EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << arch;
    }
}

// Mixtral and Jamba: a few steps of bmh train (the Switch load-balancing loss at its default 0.02, logged per
// row) write a transformers-layout checkpoint that load_model, as bmh forward does, reads back as exactly the
// trained model. BlackMamba with --routing top1 (softmax gate) likewise.
TEST(TrainShakespeare, MixtralJambaAndTop1CheckpointsReloadWithIdenticalLogits) {
  const fs::path root = fs::path(testing::TempDir()) / "bmh_train_moe_reload";
  fs::remove_all(root);
  const TrainableFactory factory = [](const ModelConfig& c, const TensorMap& w) {
    return make_trainable(c, w, "cpu", "fp32");
  };
  std::unique_ptr<TokenData> data;
  for (const auto& [preset, routing, family] :
       {std::tuple<const char*, const char*, const char*>{"tiny-mixtral-50k", "sinkhorn", "hf-mixtral"},
        {"tiny-jamba-50k", "sinkhorn", "hf-jamba"}, {"tiny-blackmamba-50k", "top1", "zyphra-blackmamba"}}) {
    const json j = {{"preset", preset}, {"vocab_size", 256}, {"seed", 3}, {"routing", routing},
                    {"data", {{"text", kText}, {"tokenizer", "bytes"}, {"val_fraction", 0.1}}},
                    {"seq_len", 16}, {"batch", 2}, {"steps", 4}, {"lr", 3e-3}, {"warmup", 1},
                    {"log_every", 2}, {"eval_every", 4}, {"eval_batches", 1}};
    const TrainConfig c = train_config_from_json(j, preset);
    if (!data) data = std::make_unique<TokenData>(TokenData::load(c.data));
    TrainRunOptions opt;
    opt.out_dir = (root / preset).string();
    const TrainOutcome t = run_training(c, *data, factory, opt);
    EXPECT_EQ(t.summary["family"], family);
    const bool topk = std::string(preset) != "tiny-blackmamba-50k";
    EXPECT_EQ(t.summary["aux_loss_coef"].get<double>(), topk ? 0.02 : 0.0) << preset;
    // Logged every row: E sum f P, k (= 2) for a perfectly balanced top-2 router, 1 for top-1.
    for (size_t i = 1; i < t.log.size(); ++i) {
      EXPECT_GT(t.log[i].aux_loss, topk ? 1.9 : 0.9) << preset << " row " << i;
      EXPECT_LT(t.log[i].aux_loss, topk ? 4.0 : 3.0) << preset << " row " << i;
    }
    ModelSpec spec;
    spec.dir = opt.out_dir + "/checkpoint";
    std::unique_ptr<LanguageModel> loaded = load_model(spec);
    EXPECT_EQ(loaded->config().family, family);
    std::unique_ptr<LanguageModel> direct = ref::make_reference_model(t.cfg, t.parameters, "fp32");
    const Tensor ids = data->val_batches(1, 2, 24)[0];
    const std::vector<float> a = loaded->forward(ids).logits.to_f32(), b = direct->forward(ids).logits.to_f32();
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << preset;
  }
}

struct Out {
  int rc = 0;
  std::string text;
};

Out run(const std::string& args) {
  FILE* p = popen((std::string(BMH_BINARY) + " " + args + " 2>&1").c_str(), "r");
  Out o;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) o.text.append(buf, n);
  const int st = pclose(p);
  o.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return o;
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return json::parse(in);
}

// What must not depend on timing: the losses, gradient norms, learning rates and expert counts of every row.
json curve(const json& results) {
  json c = json::array();
  for (const auto& r : results["log"])
    c.push_back({r["step"], r["train_loss"], r["val_loss"], r["grad_norm"], r["lr"], r["expert_counts"]});
  return c;
}

TEST(TrainShakespeare, KillNineAndResumeGivesTheSameCurve) {
  const fs::path root = fs::path(testing::TempDir()) / "bmh_train_kill";
  fs::remove_all(root);
  fs::create_directories(root);
  const std::string args = "train --config " + kRoot + "/experiments/models/blackmamba-d64.json --text " + kText +
                           " --seq-len 32 --batch 4 --steps 24 --warmup 4 --log-every 2 --eval-every 6 "
                           "--eval-batches 1 --checkpoint-every 4 --seed 5 --no-plots";
  const std::string killed = (root / "killed").string(), whole = (root / "whole").string();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::freopen((root / "first.log").c_str(), "w", stdout);
    std::freopen((root / "first.log").c_str(), "a", stderr);
    std::vector<std::string> v = {BMH_BINARY};
    std::istringstream ss(args + " --out " + killed);
    for (std::string w; ss >> w;) v.push_back(w);
    std::vector<char*> argv;
    for (auto& s : v) argv.push_back(s.data());
    argv.push_back(nullptr);
    execv(BMH_BINARY, argv.data());
    _exit(127);
  }
  // Kill it once its first checkpoint is in place (the run then has 20 more steps to go).
  const auto t0 = std::chrono::steady_clock::now();
  while (!fs::exists(killed + "/checkpoint/trainer_state.json") &&
         std::chrono::steady_clock::now() - t0 < std::chrono::seconds(300))
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  kill(pid, SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFSIGNALED(st)) << "the run finished before it could be killed";
  EXPECT_FALSE(fs::exists(killed + "/results.json"));

  Out b = run(args + " --out " + killed);
  ASSERT_EQ(b.rc, 0) << b.text;
  EXPECT_NE(b.text.find("resuming from"), std::string::npos) << b.text;
  Out c = run(args + " --out " + whole);
  ASSERT_EQ(c.rc, 0) << c.text;
  const json rk = read_json(killed + "/results.json"), rw = read_json(whole + "/results.json");
  EXPECT_EQ(curve(rk), curve(rw));
  EXPECT_GT(rk["summary"]["resumed_from"].get<int>(), 0);
  for (const auto& e : fs::directory_iterator(killed))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << "stray " << e.path();
}

}  // namespace
}  // namespace bmh::train

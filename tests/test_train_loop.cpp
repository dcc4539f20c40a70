// The training loop around any TrainableModel: a run stopped at a checkpoint and resumed continues the
// uninterrupted run's curve bit for bit, the checkpoint swap survives a kill between its renames, and a
// checkpoint of another run is refused. The model here is a test-only quadratic over a real config's canonical
// parameters (loss 0.5 * sum (p - target(batch))^2), so the loop, optimizer and checkpoints are exercised in
// milliseconds; tests/test_train_shakespeare.cpp runs the same loop on the reference backward.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/presets.h"
#include "train/checkpoint_io.h"
#include "train/init.h"
#include "train/trainer.h"

namespace bmh::train {
namespace {

namespace fs = std::filesystem;

class QuadraticModel final : public TrainableModel {
 public:
  QuadraticModel(ModelConfig cfg, const TensorMap& w) : cfg_(std::move(cfg)) {
    for (auto& [k, t] : w) {
      Tensor o = Tensor::zeros(t.dtype(), t.shape());
      std::memcpy(o.raw_mut(), t.raw(), t.nbytes());
      p_[k] = std::move(o);
    }
  }
  const ModelConfig& config() const override { return cfg_; }
  std::string describe() const override { return "test quadratic"; }
  TensorMap& parameters() override { return p_; }
  LossAndGrad loss_and_grad(const Tensor& ids, const RoutingHook*) override {
    LossAndGrad r;
    r.loss = eval(ids, &r.grads);
    return r;
  }
  double loss(const Tensor& ids, const RoutingHook*) override { return eval(ids, nullptr); }

 private:
  double eval(const Tensor& ids, TensorMap* grads) {
    double phase = 0;
    for (int64_t x : ids.to_i64()) phase += double(x);
    double loss = 0;
    for (auto& [k, p] : p_) {
      Tensor g = Tensor::zeros(DType::F32, p.shape());
      for (int64_t i = 0; i < p.numel(); ++i) {
        const float target = 0.1f * float(std::sin(0.01 * double(i) + phase * 1e-3));
        const float d = p.data<float>()[i] - target;
        loss += 0.5 * double(d) * d;
        g.data_mut<float>()[i] = d;
      }
      if (grads) (*grads)[k] = std::move(g);
    }
    return loss;
  }
  ModelConfig cfg_;
  TensorMap p_;
};

TrainConfig config(const std::string& text) {
  nlohmann::json j = {{"preset", "tiny-mamba-50k"}, {"vocab_size", 256}, {"seed", 4},
                      {"data", {{"text", text}, {"tokenizer", "bytes"}}}, {"seq_len", 16}, {"batch", 2},
                      {"accum", 2}, {"steps", 12}, {"lr", 1e-2}, {"warmup", 3}, {"log_every", 2}, {"eval_every", 4},
                      {"eval_batches", 1}, {"checkpoint_every", 4}};
  return train_config_from_json(j, "test");
}

std::vector<double> curve(const TrainOutcome& t) {
  std::vector<double> v;
  for (const auto& r : t.log) v.insert(v.end(), {double(r.step), r.train_loss, r.val_loss, r.grad_norm, r.lr});
  return v;
}

const TrainableFactory kFactory = [](const ModelConfig& c, const TensorMap& w) {
  return std::make_unique<QuadraticModel>(c, w);
};

TEST(TrainLoop, ResumedRunContinuesTheCurveExactly) {
  const std::string text = std::string(BMH_TEST_DIR) + "/../data/text/tinyshakespeare.input.txt";
  const TrainConfig c = config(text);
  const TokenData data = TokenData::load(c.data);
  const fs::path root = fs::path(testing::TempDir()) / "bmh_train_loop";
  fs::remove_all(root);

  TrainRunOptions whole;
  whole.out_dir = (root / "whole").string();
  const TrainOutcome a = run_training(c, data, kFactory, whole);
  EXPECT_TRUE(a.summary["finished"].get<bool>());
  EXPECT_LT(a.log.back().train_loss, a.log[1].train_loss);  // it optimises
  ASSERT_EQ(a.log.size(), 1u + 6u);                           // step 0, then every 2 steps

  TrainRunOptions part = whole;
  part.out_dir = (root / "parts").string();
  part.stop_after = 6;  // stops after step 6; the last checkpoint is step 4
  const TrainOutcome b1 = run_training(c, data, kFactory, part);
  EXPECT_FALSE(b1.summary["finished"].get<bool>());
  EXPECT_EQ(read_trainer_state(part.out_dir)["step"], 4);
  // A kill between the checkpoint swap's two renames leaves only checkpoint.prev: it is recovered.
  fs::rename(fs::path(part.out_dir) / "checkpoint", fs::path(part.out_dir) / "checkpoint.prev");
  fs::create_directories(fs::path(part.out_dir) / "checkpoint.tmp.99999");
  part.stop_after = 0;
  const TrainOutcome b2 = run_training(c, data, kFactory, part);
  EXPECT_TRUE(b2.resumed);
  EXPECT_EQ(b2.resumed_from, 4);
  EXPECT_EQ(curve(b2), curve(a));  // bit for bit
  const TensorMap wa = read_optimizer_state(whole.out_dir), wb = read_optimizer_state(part.out_dir);
  for (auto& [k, t] : wa) EXPECT_EQ(std::memcmp(t.raw(), wb.at(k).raw(), t.nbytes()), 0) << k;
  for (const auto& e : fs::directory_iterator(part.out_dir))
    EXPECT_EQ(e.path().filename().string(), "checkpoint") << "leftover " << e.path();

  // Other settings on the same directory: refused by name, unless asked to start over.
  nlohmann::json other = c.json;
  other["lr"] = 2e-2;
  const TrainConfig c2 = train_config_from_json(other, "test");
  try {
    run_training(c2, data, kFactory, part);
    ADD_FAILURE() << "a checkpoint of other settings was resumed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("other settings"), std::string::npos) << e.what();
  }
  part.restart_on_mismatch = true;
  EXPECT_FALSE(run_training(c2, data, kFactory, part).resumed);
}

}  // namespace
}  // namespace bmh::train

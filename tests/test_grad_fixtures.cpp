// `bmh grad` against PyTorch autograd through the official modules (tests/fixtures/*/grads.safetensors), and the
// reference TrainableModel's forward against the inference forward.
//
// Tolerances (the acceptance): loss <= 1e-5 relative, each gradient <= 1e-4 relative Frobenius, exactly 0
// where the oracle's gradient is all zero (an expert no token reached). The oracle ran in fp32 on a GPU, so even
// our fp64 result differs from it by the oracle's own rounding. Worst seen (2026-12-02), over loss and all
// gradients: blackmamba-tiny 1.6e-6 (fp64) / 2.5e-6 (fp32), blackmamba-tiny-variant 1.3e-6 / 2.3e-6,
// mamba-tiny-hf 1.3e-6 / 1.0e-6, pythia-tiny 6.6e-7 / 8.4e-7, mixtral-tiny 8.3e-7 / 1.2e-6 (layer 1 k_proj / router),
// jamba-tiny 4.8e-6 / 7.3e-6 (a MoE router / b_layernorm; its forward already differs from the oracle by 2.3e-6).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "evals/model_loader.h"
#include "reference/backward_ops.h"
#include "reference/model.h"
#include "test_util.h"

namespace bmh {
namespace {

namespace fs = std::filesystem;

struct GradCase {
  std::string name, dtype;
};
void PrintTo(const GradCase& c, std::ostream* os) { *os << c.name << " " << c.dtype; }
class GradFixture : public ::testing::TestWithParam<GradCase> {};

TEST_P(GradFixture, BmhGradReproducesAutograd) {
  const auto& [name, dtype] = GetParam();
  const std::string fx = test::fixture_dir(name);
  const fs::path out = fs::temp_directory_path() / ("bmh_grad_" + name + "_" + dtype + "_" + std::to_string(::getpid()) + ".safetensors");
  const std::string cmd = std::string(BMH_BINARY) + " grad --model " + fx + " --inputs " + fx +
                          "/grads.safetensors --dtype " + dtype + " --out " + out.string() + " > /dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const TensorMap got = read_safetensors(out.string()).tensors;
  const TensorMap exp = read_safetensors(fx + "/grads.safetensors").tensors;
  for (const auto& [k, t] : exp) EXPECT_TRUE(got.count(k)) << name << ": missing " << k;
  for (const auto& [k, t] : got) EXPECT_TRUE(exp.count(k)) << name << ": extra " << k;
  const double loss = got.at("loss").to_f64().at(0), want = exp.at("loss").to_f64().at(0);
  EXPECT_LE(std::abs(loss - want) / std::abs(want), 1e-5) << name << " " << dtype << " loss " << loss << " vs " << want;
  double worst = 0;
  for (const auto& [k, e] : exp) {
    if (k.rfind("grad.", 0) != 0 || !got.count(k)) continue;
    const Tensor& g = got.at(k);
    ASSERT_EQ(g.dtype(), DType::F32) << k;
    ASSERT_EQ(shape_str(g.shape()), shape_str(e.shape())) << k;
    const std::vector<double> ev = e.to_f64(), gv = g.to_f64();
    bool oracle_zero = true;
    for (double v : ev) oracle_zero = oracle_zero && v == 0;
    if (oracle_zero) {
      for (double v : gv) ASSERT_EQ(v, 0.0) << k << ": the oracle's gradient is exactly zero";
      continue;
    }
    if (e.shape().size() == 3 && k.find(".experts.") != std::string::npos) {
      // transformers 5 stacks an MoE block's experts [E, ...]: an expert no token reached is an all-zero slice.
      const size_t per = ev.size() / size_t(e.dim(0));
      for (size_t x = 0; x < size_t(e.dim(0)); ++x)
        if (std::all_of(ev.begin() + x * per, ev.begin() + (x + 1) * per, [](double v) { return v == 0; })) {
          for (size_t i = x * per; i < (x + 1) * per; ++i) ASSERT_EQ(gv[i], 0.0) << k << ": expert " << x << " is unreached";
        }
    }
    const double r = test::rel_frobenius(gv, ev);
    worst = std::max(worst, r);
    EXPECT_LE(r, 1e-4) << name << " " << dtype << " " << k;
  }
  std::printf("%s %s: loss rel %.2e, worst gradient rel Frobenius %.2e\n", name.c_str(), dtype.c_str(),
              std::abs(loss - want) / std::abs(want), worst);
  fs::remove(out);
}

// mamba-tiny-ssm holds mamba-tiny-hf's weights in mamba_ssm's layout, so the same oracle applies under mamba_ssm's
// parameter names (backbone.embedding.weight for transformers' backbone.embeddings.weight).
TEST(GradCli, MambaSsmLayoutMatchesTheSameOracle) {
  const std::string hf = test::fixture_dir("mamba-tiny-hf"), ssm = test::fixture_dir("mamba-tiny-ssm");
  const fs::path out = fs::temp_directory_path() / ("bmh_grad_ssm_" + std::to_string(::getpid()) + ".safetensors");
  ASSERT_EQ(std::system((std::string(BMH_BINARY) + " grad --model " + ssm + " --inputs " + hf + "/grads.safetensors --dtype fp64 --out " +
                         out.string() + " > /dev/null").c_str()), 0);
  const TensorMap got = read_safetensors(out.string()).tensors, exp = read_safetensors(hf + "/grads.safetensors").tensors;
  EXPECT_EQ(got.size(), exp.size());
  for (const auto& [k, t] : got) {
    std::string key = k;
    if (key == "grad.backbone.embedding.weight") key = "grad.backbone.embeddings.weight";
    ASSERT_TRUE(exp.count(key)) << k;
    if (k == "input_ids") EXPECT_EQ(t.to_i64(), exp.at(k).to_i64());
    else EXPECT_LE(test::rel_frobenius(t, exp.at(key)), k == "loss" ? 1e-5 : 1e-4) << k;
  }
  fs::remove(out);
}

std::vector<GradCase> grad_cases() {
  std::vector<GradCase> c;
  for (std::string n : {"blackmamba-tiny", "blackmamba-tiny-variant", "mamba-tiny-hf", "pythia-tiny", "mixtral-tiny", "jamba-tiny"})
    for (std::string d : {"fp64", "fp32"}) c.push_back({n, d});
  return c;
}
INSTANTIATE_TEST_SUITE_P(Oracle, GradFixture, ::testing::ValuesIn(grad_cases()), [](const auto& info) {
  std::string s = info.param.name + "_" + info.param.dtype;
  for (char& ch : s)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
});

// The training forward (block by block over the batch) gives the inference forward's loss bit for bit: the same
// per-sequence ops in the same order, the loss computed here independently from RefModel::run's logits.
template <class T> void expect_same_loss(const std::string& fixture, const std::string& dtype) {
  ModelSpec spec;
  spec.dir = test::fixture_dir(fixture);
  ModelConfig cfg;
  TensorMap w;
  load_config_and_weights(spec, &cfg, &w);
  const Tensor ids = test::random_ids(3, 9, cfg.vocab_size, 7);
  auto model = make_trainable(cfg, w, "cpu", dtype);
  const ref::RefModel<T> inference(cfg, w);
  const std::vector<int64_t> all = ids.to_i64();
  double total = 0;
  for (int b = 0; b < 3; ++b) {
    auto st = inference.new_state();
    const ref::Mat<T> lg = inference.run(std::vector<int64_t>(all.begin() + b * 9, all.begin() + (b + 1) * 9), st, nullptr);
    double seq = 0;
    for (int t = 0; t + 1 < 9; ++t) {
      double mx = -INFINITY, z = 0;
      for (int v = 0; v < cfg.vocab_size; ++v) mx = std::max(mx, double(lg(t, v)));
      for (int v = 0; v < cfg.vocab_size; ++v) z += std::exp(double(lg(t, v)) - mx);
      seq += std::log(z) + mx - double(lg(t, all[b * 9 + t + 1]));
    }
    total += seq;
  }
  const double want = total * (1.0 / (3.0 * 8));
  EXPECT_EQ(model->loss(ids), want) << fixture << " " << dtype;
  EXPECT_EQ(model->loss_and_grad(ids).loss, want) << fixture << " " << dtype;
}

TEST(Trainable, LossEqualsInferenceForwardBitForBit) {
  for (std::string f : {"blackmamba-tiny", "blackmamba-tiny-variant", "pythia-tiny", "mamba-tiny-hf", "mixtral-tiny", "jamba-tiny"}) {
    expect_same_loss<float>(f, "fp32");
    expect_same_loss<double>(f, "fp64");
  }
}

// The hook sees every row of the step at once, with the inference router's logits; choosing the argmax
// reproduces inference routing exactly, and other choices behave as forced routes.
TEST(Trainable, RoutingHookSeesAllRowsAndDecides) {
  ModelSpec spec;
  spec.dir = test::fixture_dir("blackmamba-tiny");
  spec.dtype = "fp64";
  ModelConfig cfg;
  TensorMap w;
  load_config_and_weights(spec, &cfg, &w);
  const Tensor ids = test::random_ids(2, 11, cfg.vocab_size, 3);
  auto model = make_trainable(cfg, w, "cpu", "fp64");
  auto inference = load_model(spec);
  const ForwardOutput ref = inference->forward(ids);
  const LossAndGrad plain = model->loss_and_grad(ids);
  ASSERT_EQ(plain.routes.size(), ref.routes.size());
  for (size_t m = 0; m < ref.routes.size(); ++m) EXPECT_EQ(plain.routes[m].expert, ref.routes[m].expert);

  std::vector<int> seen_rows;
  RoutingHook argmax{[&](int slot, int rows, int E, const float* logits, int64_t* expert) {
    seen_rows.push_back(rows);
    for (int r = 0; r < rows; ++r) {
      EXPECT_NEAR(logits[r * E], ref.routes[slot].router_logits[r * E], 1e-6);
      int best = 0;  // sigmoid is monotone: argmax of the logits (no ties in random data)
      for (int e = 1; e < E; ++e)
        if (logits[r * E + e] > logits[r * E + best]) best = e;
      expert[r] = best;
    }
  }};
  const LossAndGrad hooked = model->loss_and_grad(ids, &argmax);
  EXPECT_EQ(seen_rows, std::vector<int>(ref.routes.size(), 2 * 11));
  EXPECT_EQ(hooked.loss, plain.loss);
  for (const auto& [k, g] : plain.grads) EXPECT_EQ(g.to_f64(), hooked.grads.at(k).to_f64()) << k;

  // A different choice: the loss equals the inference forward with those routes forced.
  RoutingHook shifted{[&](int, int rows, int E, const float*, int64_t* expert) {
    for (int r = 0; r < rows; ++r) expert[r] = 1 + (r * 5) % (E - 1);  // never expert 0
  }};
  const LossAndGrad other = model->loss_and_grad(ids, &shifted);
  std::vector<std::pair<int, std::vector<int64_t>>> forced;
  for (const RouteRecord& r : other.routes) forced.push_back({r.block, r.expert});
  ForwardOptions opt;
  opt.force_routes = &forced;
  const Tensor logits = inference->forward(ids, opt).logits;
  double want = 0;
  const std::vector<int64_t> all = ids.to_i64();
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t + 1 < 11; ++t) {
      std::vector<double> row = test::row(logits, b, t);
      double mx = *std::max_element(row.begin(), row.end()), z = 0;
      for (double v : row) z += std::exp(v - mx);
      want += std::log(z) + mx - row[all[b * 11 + t + 1]];
    }
  want /= 2 * 10;
  EXPECT_NEAR(other.loss, want, 1e-6 * want);  // forward logits come back as float
  EXPECT_NE(other.loss, plain.loss);
  // Expert 0 reached by no row: its gradient is exactly zero, as autograd leaves it.
  for (const RouteRecord& r : other.routes) {
    ASSERT_EQ(std::count(r.expert.begin(), r.expert.end(), 0), 0);
    const std::string p = "blocks." + std::to_string(r.block) + ".moe.experts.0.";
    for (std::string k : {"fc1.weight", "fc2.weight"}) {
      for (double v : other.grads.at(p + k).to_f64()) ASSERT_EQ(v, 0.0) << p << k;
      EXPECT_GT(std::abs(other.grads.at("blocks." + std::to_string(r.block) + ".moe.experts.1." + k).to_f64()[0]) +
                    std::abs(other.grads.at("blocks." + std::to_string(r.block) + ".moe.experts.1." + k).to_f64()[1]), 0);
    }
  }

  RoutingHook bad{[](int, int rows, int, const float*, int64_t* expert) {
    for (int r = 0; r < rows; ++r) expert[r] = 99;
  }};
  EXPECT_THROW(model->loss_and_grad(ids, &bad), Error);
}

// Top-k blocks (Mixtral): `choose` alone leaves them on inference routing; `choose_topk` sees every row with the
// router's logits and decides k experts per row, the gate weights staying the router's renormalised softmax.
TEST(Trainable, TopKRoutingHookSeesAllRowsAndDecidesKSlots) {
  ModelSpec spec;
  spec.dir = test::fixture_dir("mixtral-tiny");
  spec.dtype = "fp64";
  ModelConfig cfg;
  TensorMap w;
  load_config_and_weights(spec, &cfg, &w);
  const Tensor ids = test::random_ids(2, 9, cfg.vocab_size, 5);
  auto model = make_trainable(cfg, w, "cpu", "fp64");
  auto inference = load_model(spec);
  const ForwardOutput ref = inference->forward(ids);
  const LossAndGrad plain = model->loss_and_grad(ids);
  ASSERT_EQ(plain.routes.size(), ref.routes.size());
  for (size_t m = 0; m < ref.routes.size(); ++m) {
    EXPECT_EQ(plain.routes[m].top_k, 2);
    EXPECT_EQ(plain.routes[m].expert, ref.routes[m].expert);
  }

  RoutingHook top1_only{[](int, int rows, int, const float*, int64_t* expert) {
    for (int r = 0; r < rows; ++r) expert[r] = 99;  // would fail if it were asked about a top-2 block
  }};
  EXPECT_EQ(model->loss_and_grad(ids, &top1_only).loss, plain.loss);

  std::vector<int> seen;
  RoutingHook same{nullptr, [&](int slot, int rows, int E, int k, const float* logits, int64_t* expert) {
    seen.push_back(rows * k);
    for (int r = 0; r < rows; ++r) {
      EXPECT_NEAR(logits[r * E + 1], ref.routes[slot].router_logits[r * E + 1], 1e-6);
      for (int j = 0; j < k; ++j) expert[r * k + j] = ref.routes[slot].expert[r * k + j];
    }
  }};
  const LossAndGrad hooked = model->loss_and_grad(ids, &same);
  EXPECT_EQ(seen, std::vector<int>(ref.routes.size(), 2 * 9 * 2));
  EXPECT_EQ(hooked.loss, plain.loss);
  for (const auto& [k, g] : plain.grads) EXPECT_EQ(g.to_f64(), hooked.grads.at(k).to_f64()) << k;

  // Experts 1..3 only, two distinct per row: the loss equals the inference forward with those routes forced.
  RoutingHook shifted{nullptr, [](int, int rows, int E, int k, const float*, int64_t* expert) {
    for (int r = 0; r < rows; ++r)
      for (int j = 0; j < k; ++j) expert[r * k + j] = 1 + (r + j) % (E - 1);
  }};
  const LossAndGrad other = model->loss_and_grad(ids, &shifted);
  std::vector<std::pair<int, std::vector<int64_t>>> forced;
  for (const RouteRecord& r : other.routes) forced.push_back({r.block, r.expert});
  ForwardOptions opt;
  opt.force_routes = &forced;
  const Tensor logits = inference->forward(ids, opt).logits;
  double want = 0;
  const std::vector<int64_t> all = ids.to_i64();
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t + 1 < 9; ++t) {
      std::vector<double> row = test::row(logits, b, t);
      double mx = *std::max_element(row.begin(), row.end()), z = 0;
      for (double v : row) z += std::exp(v - mx);
      want += std::log(z) + mx - row[all[b * 9 + t + 1]];
    }
  want /= 2 * 8;
  EXPECT_NEAR(other.loss, want, 1e-6 * want);  // forward logits come back as float
  EXPECT_NE(other.loss, plain.loss);
  for (const RouteRecord& r : other.routes) {  // expert 0 reached by no row: exactly zero, the router still learns
    const std::string p = "blocks." + std::to_string(r.block) + ".moe.";
    for (std::string k : {"experts.0.fc1.weight", "experts.0.fc2.weight"})
      for (double v : other.grads.at(p + k).to_f64()) ASSERT_EQ(v, 0.0) << p << k;
    const std::vector<double> router = other.grads.at(p + "router.weight").to_f64();
    EXPECT_NE(router[0], 0.0);  // row 0 of the router (expert 0's logit) through the softmax
  }

  RoutingHook twice{nullptr, [](int, int rows, int, int k, const float*, int64_t* expert) {
    for (int i = 0; i < rows * k; ++i) expert[i] = 1;
  }};
  EXPECT_THROW(model->loss_and_grad(ids, &twice), Error);
}

TEST(GradCli, BadInputFailsWithoutWritingAResult) {
  const fs::path dir = fs::temp_directory_path() / ("bmh_grad_bad_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string fx = test::fixture_dir("mamba-tiny-hf"), out = (dir / "g.safetensors").string();
  auto run = [&](const Tensor& ids, const std::string& dtype = "fp32") {
    const std::string in = (dir / "in.safetensors").string();
    write_safetensors(in, {{"input_ids", ids}});
    return std::system((std::string(BMH_BINARY) + " grad --model " + fx + " --inputs " + in + " --dtype " + dtype +
                        " --out " + out + " > /dev/null 2>&1").c_str());
  };
  EXPECT_NE(run(Tensor::from_i64({1, 2, 3}, {3, 1})), 0);          // one token: nothing to predict
  EXPECT_NE(run(Tensor::from_i64({1, 2, 512, 3}, {2, 2})), 0);     // id outside the vocabulary (512)
  EXPECT_NE(run(Tensor::from_f32({1, 2, 3, 4}, {2, 2})), 0);       // not int64
  EXPECT_FALSE(fs::exists(out));
  EXPECT_NE(run(Tensor::from_i64({1, 2, 3, 4}, {2, 2}), "bf16"), 0);  // the reference trains in fp32/fp64
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(run(Tensor::from_i64({1, 2, 3, 4}, {2, 2})), 0);          // and the same ids in fp32 work
  EXPECT_EQ(std::system((std::string(BMH_BINARY) + " grad --help > /dev/null").c_str()), 0);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace bmh

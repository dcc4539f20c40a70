// bmh train's data, initialisation, FLOP formula and checkpoint layouts: the torch zip writer read back by our
// reader, every family's layout read back by the loaders every bmh command uses, and the training FLOPs of a
// Mamba layer against Zyphra's published calculator.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/checkpoint.h"
#include "core/config_parsers.h"
#include "core/flops.h"
#include "core/model_weights.h"
#include "core/presets.h"
#include "test_util.h"
#include "train/data.h"
#include "train/family_layout.h"
#include "train/init.h"
#include "train/training_flops.h"

namespace bmh::train {
namespace {

namespace fs = std::filesystem;

std::string temp_dir(const std::string& name) {
  fs::path p = fs::path(testing::TempDir()) / ("bmh_train_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.numel() == b.numel() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

TEST(TrainData, BytesSplitBatchesAndUnigramEntropy) {
  const std::string dir = temp_dir("data");
  std::string text;
  std::mt19937_64 rng(1);
  for (int i = 0; i < 5000; ++i) text += char('a' + rng() % 7 + (i % 11 == 0 ? 10 : 0));
  std::ofstream(dir + "/t.txt") << text;
  DataSpec spec;
  spec.text_files = {dir + "/t.txt"};
  spec.val_fraction = 0.2;
  TokenData d = TokenData::load(spec);
  EXPECT_EQ(d.vocab_size(), 256);
  ASSERT_EQ(d.val_tokens().size(), 1000u);
  ASSERT_EQ(d.train_tokens().size(), 4000u);
  EXPECT_EQ(d.val_tokens()[0], uint8_t(text[4000]));
  // The unigram entropy of the held-out part, recomputed directly.
  std::map<char, int> c;
  for (size_t i = 4000; i < text.size(); ++i) ++c[text[i]];
  double h = 0;
  for (auto& [ch, n] : c) h -= n / 1000.0 * std::log(n / 1000.0);
  EXPECT_NEAR(d.val_unigram_entropy(), h, 1e-12);
  EXPECT_GT(d.val_unigram_cross_entropy(), d.val_unigram_entropy());  // Gibbs: another distribution scores worse
  // Windows are slices of the train split; the sampler is a function of (seed, step, micro): same call, same batch.
  Tensor b = d.train_batch(7, 12, 1, 4, 16), b2 = d.train_batch(7, 12, 1, 4, 16), b3 = d.train_batch(7, 13, 1, 4, 16);
  EXPECT_EQ(b.shape(), (Shape{4, 16}));
  EXPECT_EQ(b.to_i64(), b2.to_i64());
  EXPECT_NE(b.to_i64(), b3.to_i64());
  const auto ids = b.to_i64();
  for (int r = 0; r < 4; ++r) {
    const std::string w(text.begin(), text.begin() + 4000);
    std::string win;
    for (int t = 0; t < 16; ++t) win += char(ids[size_t(r) * 16 + t]);
    EXPECT_NE(w.find(win), std::string::npos);
  }
  std::vector<Tensor> val = d.val_batches(2, 3, 16);
  ASSERT_EQ(val.size(), 2u);
  EXPECT_EQ(val[0].to_i64()[0], d.val_tokens()[0]);                    // first window at the start
  EXPECT_EQ(val[1].to_i64()[2 * 16 + 15], d.val_tokens().back());      // last window at the end

  // nanoGPT shards: uint16 little-endian train.bin / val.bin.
  std::vector<uint16_t> tr(300), va(50);
  for (auto& x : tr) x = uint16_t(rng() % 50000);
  for (auto& x : va) x = uint16_t(rng() % 50000);
  std::ofstream(dir + "/train.bin", std::ios::binary).write(reinterpret_cast<const char*>(tr.data()), 600);
  std::ofstream(dir + "/val.bin", std::ios::binary).write(reinterpret_cast<const char*>(va.data()), 100);
  DataSpec bins;
  bins.bin_dir = dir;
  TokenData db = TokenData::load(bins);
  EXPECT_EQ(db.train_tokens(), tr);
  EXPECT_EQ(db.val_tokens(), va);
  fs::create_directories(dir + "/odd");
  std::ofstream(dir + "/odd/train.bin", std::ios::binary) << "abc";
  std::ofstream(dir + "/odd/val.bin", std::ios::binary) << "ab";
  bins.bin_dir = dir + "/odd";
  try {
    TokenData::load(bins);
    ADD_FAILURE() << "odd-sized shard accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.bin"), std::string::npos) << e.what();
  }
}

TEST(TrainInit, FamilyRules) {
  ModelConfig bm = preset_config("tiny-blackmamba-50k");
  bm.vocab_size = 256;
  const TensorMap w = init_weights(bm, "zyphra-blackmamba", 3, DType::F32);
  EXPECT_EQ(w.size(), expected_weights(bm).size());
  const MambaSpec& m = bm.blocks[0].mamba;
  const std::vector<float> alog = w.at("blocks.0.mamba.A_log").to_f32();
  for (int c = 0; c < m.d_inner; ++c)
    for (int n = 0; n < m.d_state; ++n) EXPECT_FLOAT_EQ(alog[size_t(c) * m.d_state + n], std::log(float(n + 1)));
  for (float x : w.at("blocks.2.mamba.D").to_f32()) EXPECT_EQ(x, 1.0f);
  for (float x : w.at("blocks.0.mamba.dt_proj.bias").to_f32()) {
    const double dt = std::log1p(std::exp(double(x)));  // softplus(bias) = dt in [dt_min, dt_max]
    EXPECT_GE(dt, 0.001 * (1 - 1e-5));
    EXPECT_LE(dt, 0.1 * (1 + 1e-5));
  }
  auto bound = [&](const std::string& name, double b, double min_reach) {
    const std::vector<float> v = w.at(name).to_f32();
    double mx = 0;
    for (float x : v) mx = std::max(mx, std::fabs(double(x)));
    EXPECT_LE(mx, b) << name;
    EXPECT_GE(mx, min_reach * b) << name;  // the draws do reach out towards the bound
  };
  bound("blocks.0.mamba.conv1d.weight", 1 / std::sqrt(4.0), 0.8);
  bound("blocks.0.mamba.dt_proj.weight", 1 / std::sqrt(double(m.dt_rank)), 0.8);
  bound("blocks.0.mamba.in_proj.weight", 1 / std::sqrt(64.0), 0.95);
  bound("blocks.0.mamba.out_proj.weight", 1 / std::sqrt(double(m.d_inner)) / std::sqrt(4.0), 0.95);
  bound("blocks.1.moe.router.weight", 1 / std::sqrt(64.0), 0.9);
  bound("blocks.1.moe.experts.3.fc2.weight", 1 / std::sqrt(128.0), 0.95);  // linear_fc2: not rescaled
  for (float x : w.at("blocks.1.moe.router.bias").to_f32()) EXPECT_EQ(x, 0.0f);
  for (float x : w.at("final_norm.bias").to_f32()) EXPECT_EQ(x, 0.0f);
  for (float x : w.at("blocks.1.mlp_norm.weight").to_f32()) EXPECT_EQ(x, 1.0f);
  // The embedding is N(0, 0.02): over 16,384 draws the sample std has a standard error of 0.55%; allow 3%.
  auto stddev = [](const std::vector<float>& v) {
    double s = 0, s2 = 0;
    for (float x : v) s += x, s2 += double(x) * x;
    return std::sqrt(s2 / v.size() - (s / v.size()) * (s / v.size()));
  };
  EXPECT_NEAR(stddev(w.at("embed.weight").to_f32()), 0.02, 0.0006);
  // GPT-NeoX rules: every Linear N(0, 0.02).
  ModelConfig tr = preset_config("tiny-transformer-50k");
  tr.vocab_size = 256;
  const TensorMap wt = init_weights(tr, "bmh", 3, DType::F64);
  EXPECT_NEAR(stddev(wt.at("blocks.1.mlp.fc1.weight").to_f32()), 0.02, 0.0008);
  EXPECT_NEAR(stddev(wt.at("blocks.0.attn.qkv.weight").to_f32()), 0.02, 0.0008);
  EXPECT_EQ(wt.at("embed.weight").dtype(), DType::F64);
  // Deterministic per seed, different across seeds.
  EXPECT_TRUE(same_bytes(init_weights(bm, "zyphra-blackmamba", 3, DType::F32).at("embed.weight"), w.at("embed.weight")));
  EXPECT_FALSE(same_bytes(init_weights(bm, "zyphra-blackmamba", 4, DType::F32).at("embed.weight"), w.at("embed.weight")));
}

TEST(TrainLayout, TorchZipWriterReadsBack) {
  const std::string dir = temp_dir("zip");
  std::mt19937_64 rng(2);
  TensorMap t;
  Tensor f32 = Tensor::zeros(DType::F32, {3, 5}), f64 = Tensor::zeros(DType::F64, {7}), i64 = Tensor::zeros(DType::I64, {2, 2});
  Tensor bf = Tensor::zeros(DType::BF16, {4, 1, 3});
  for (int64_t i = 0; i < 15; ++i) f32.data_mut<float>()[i] = float(rng() % 1000) / 7.0f - 70;
  for (int64_t i = 0; i < 7; ++i) f64.data_mut<double>()[i] = double(rng() % 1000) / 3.0;
  for (int64_t i = 0; i < 4; ++i) i64.data_mut<int64_t>()[i] = int64_t(rng()) >> 1;
  for (int64_t i = 0; i < 12; ++i) bf.data_mut<uint16_t>()[i] = uint16_t(rng());
  t["a.weight"] = f32;
  t["tied.weight"] = f32;  // same buffer: one storage
  t["b"] = f64;
  t["c"] = i64;
  t["d.conv"] = bf;
  write_torch_zip(dir + "/m.bin", t, "model");
  Checkpoint ck = read_torch_zip(dir + "/m.bin");
  ASSERT_EQ(ck.tensors.size(), t.size());
  for (auto& [k, v] : t) {
    ASSERT_TRUE(ck.tensors.count("model." + k)) << k;
    EXPECT_EQ(ck.tensors.at("model." + k).shape(), v.shape()) << k;
    EXPECT_TRUE(same_bytes(ck.tensors.at("model." + k), v)) << k;
  }
  write_torch_zip(dir + "/plain.bin", t);
  EXPECT_TRUE(read_torch_zip(dir + "/plain.bin").tensors.count("a.weight"));

  // Python's own unpickler, restricted to the globals torch.load(weights_only=True) allows, reads the archive as
  // torch/serialization.py does: zip entries <archive>/data.pkl, byteorder, version, data/<key>.
  const std::string py = R"(
import collections, io, pickle, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = z.namelist()
assert all(n.startswith('archive/') for n in names), names
assert z.read('archive/byteorder') == b'little' and z.read('archive/version') == b'3\n'
assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
class U(pickle.Unpickler):
    def find_class(self, mod, name):
        if (mod, name) == ('collections', 'OrderedDict'): return collections.OrderedDict
        if (mod, name) == ('torch._utils', '_rebuild_tensor_v2'): return lambda *a: a
        if mod == 'torch' and name.endswith('Storage'): return name
        raise pickle.UnpicklingError(mod + '.' + name)
    def persistent_load(self, pid):
        kind, cls, key, loc, numel = pid
        assert kind == 'storage' and loc == 'cpu'
        return (cls, len(z.read('archive/data/' + key)), numel)
obj = U(io.BytesIO(z.read('archive/data.pkl'))).load()
for name, (storage, offset, size, stride, requires_grad, hooks) in obj['model'].items():
    print(name, storage[0], storage[1], storage[2], list(size), list(stride))
)";
  std::ofstream(dir + "/check.py") << py;
  FILE* p = popen(("/usr/bin/python3 " + dir + "/check.py " + dir + "/m.bin 2>&1").c_str(), "r");
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  ASSERT_EQ(pclose(p), 0) << out;
  EXPECT_NE(out.find("a.weight FloatStorage 60 15 [3, 5] [5, 1]"), std::string::npos) << out;
  EXPECT_NE(out.find("tied.weight FloatStorage 60 15 [3, 5] [5, 1]"), std::string::npos) << out;
  EXPECT_NE(out.find("d.conv BFloat16Storage 24 12 [4, 1, 3] [3, 3, 1]"), std::string::npos) << out;
  EXPECT_NE(out.find("c LongStorage 32 4 [2, 2] [2, 1]"), std::string::npos) << out;
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
}

// Writes cfg in its family layout and reads it back through load_model_config + canonicalize_weights.
void round_trip(const ModelConfig& cfg, const std::string& want_family, const std::string& weights_file) {
  const std::string dir = temp_dir("layout_" + want_family);
  const std::string family = layout_family(cfg);
  EXPECT_EQ(family, want_family) << cfg.name;
  const TensorMap w = init_weights(cfg, family, 9, DType::F32);
  ModelConfig named = cfg;
  named.family = family;
  write_model_dir(dir, named, w);
  EXPECT_TRUE(fs::exists(dir + "/" + weights_file)) << want_family;
  ModelConfig back = load_model_config(dir);
  EXPECT_EQ(back.family, want_family);
  nlohmann::json a = bmh_config_json(back), b = bmh_config_json(cfg);
  for (auto* j : {&a, &b}) j->erase("name"), j->erase("max_seq_len");
  EXPECT_EQ(a, b) << want_family;
  const TensorMap r = canonicalize_weights(back, load_checkpoint_dir(dir));
  ASSERT_EQ(r.size(), w.size());
  for (auto& [k, v] : w) EXPECT_TRUE(same_bytes(r.at(k), v)) << want_family << " " << k;
}

TEST(TrainLayout, EveryFamilyReadsBack) {
  ModelConfig bm = preset_config("tiny-blackmamba-50k"), mb = preset_config("tiny-mamba-50k");
  ModelConfig py = preset_config("tiny-pythia-50k"), tm = preset_config("tiny-transformer-moe-50k");
  for (ModelConfig* c : {&bm, &mb, &py, &tm}) c->vocab_size = 256;
  round_trip(bm, "zyphra-blackmamba", "pytorch_model.bin");
  round_trip(mb, "mamba-ssm", "pytorch_model.bin");
  round_trip(py, "hf-gpt-neox", "model.safetensors");
  round_trip(tm, "bmh", "model.safetensors");
  ModelConfig hf = load_model_config(test::fixture_dir("mamba-tiny-hf"));
  round_trip(hf, "hf-mamba", "model.safetensors");
  // Mixtral and Jamba: presets (whose family is "preset") are saved as transformers would, and the fixtures'
  // own configs (written by transformers 5.x save_pretrained) survive a write and a read.
  ModelConfig mx = preset_config("tiny-mixtral-50k"), jb = preset_config("tiny-jamba-50k");
  for (ModelConfig* c : {&mx, &jb}) c->vocab_size = 256;
  round_trip(mx, "hf-mixtral", "model.safetensors");
  round_trip(jb, "hf-jamba", "model.safetensors");
  round_trip(load_model_config(test::fixture_dir("mixtral-tiny")), "hf-mixtral", "model.safetensors");
  round_trip(load_model_config(test::fixture_dir("jamba-tiny")), "hf-jamba", "model.safetensors");
  {
    // transformers' own key layout: q/k/v and w1/w3 (gate/up) apart, as in the fixtures.
    const Checkpoint ck = read_safetensors((fs::path(testing::TempDir()) / "bmh_train_layout_hf-jamba" / "model.safetensors").string());
    EXPECT_TRUE(ck.tensors.count("model.layers.1.feed_forward.experts.0.gate_proj.weight"));
    EXPECT_TRUE(ck.tensors.count("model.layers.1.feed_forward.experts.0.up_proj.weight"));
    EXPECT_TRUE(ck.tensors.count("model.layers.2.self_attn.k_proj.weight"));
    EXPECT_EQ(ck.tensors.at("model.layers.1.mamba.conv1d.weight").shape(), (Shape{128, 1, 4}));  // nn.Conv1d
    const nlohmann::json j = nlohmann::json::parse(std::ifstream(fs::path(testing::TempDir()) / "bmh_train_layout_hf-jamba" / "config.json"));
    EXPECT_EQ(j.at("use_mamba_kernels"), false);  // transformers' slow path, which needs no CUDA kernels
    // The fixture's own layer pattern, as its config states it.
    EXPECT_EQ(j.at("attn_layer_period"), 4);
    EXPECT_EQ(j.at("attn_layer_offset"), 2);
    EXPECT_EQ(j.at("expert_layer_period"), 2);
    EXPECT_EQ(j.at("expert_layer_offset"), 1);
  }
  // Zyphra's key layout as the released checkpoints (and the fixture) have it: {"model": {...}}, conv [Di, 1, K].
  const Checkpoint ck = read_torch_zip(fs::path(testing::TempDir()) / "bmh_train_layout_zyphra-blackmamba" / "pytorch_model.bin");
  EXPECT_EQ(ck.tensors.at("model.decoder.layers.0.mixer.conv1d.weight").shape(), (Shape{128, 1, 4}));
  EXPECT_TRUE(ck.tensors.count("model.decoder.layers.1.mixer.local_experts.7.linear_fc2.weight"));
  EXPECT_FALSE(ck.tensors.count("model.output_layer.weight"));  // tied, as in the fixture
  // A config no family can hold is refused by name.
  try {
    family_config_json(tm, "zyphra-blackmamba");
    ADD_FAILURE() << "transformer saved as Zyphra";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("zyphra-blackmamba layout"), std::string::npos) << e.what();
  }
}

TEST(TrainFlops, MambaTermAgreesWithZyphraCalculator) {
  for (const char* p : {"tiny-blackmamba-50k", "blackmamba-1.5b", "mamba-2.8b"}) {
    const ModelConfig cfg = preset_config(p);
    const int i = 0;  // a Mamba block in each
    const BlockFlops b = block_flops_per_token(cfg, i, 2048);
    double mamba = 0, mamba_macs = 0;
    for (const auto& t : b.terms)
      if (t.name.rfind("mamba.", 0) == 0 && t.name != "mamba.norm") mamba += t.flops(), mamba_macs += t.macs;
    const MambaSpec& m = cfg.blocks[i].mamba;
    const double z = zyphra_mamba1_flops_per_token(m, cfg.d_model);
    const double Di = m.d_inner, N = m.d_state;
    // Same multiply-adds: Zyphra's count minus its elementwise parts (3N + 1 per channel) is 2 x our MACs.
    EXPECT_NEAR(2 * mamba_macs, z - Di * (3 * N + 1), 1e-9 * z) << p;
    // Totals differ only by the per-channel elementwise ops: Zyphra counts 1 per channel, core/flops.cpp 11 (conv
    // bias and SiLU 3, dt bias and softplus 2, the scan's dt*u, D*u, SiLU(z) and products 6).
    EXPECT_NEAR(mamba - z, 10 * Di, 1e-9 * z) << p;
  }
  ModelConfig cfg = preset_config("tiny-transformer-50k");
  EXPECT_NEAR(training_flops_per_token(cfg, 64), 3 * flops_sequence(cfg, 64).flops() / 64, 1e-6);
}

}  // namespace
}  // namespace bmh::train

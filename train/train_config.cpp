#include "train/train_config.h"

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <set>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/model_weights.h"
#include "core/presets.h"
#include "train/family_layout.h"
#include "train/init.h"

namespace bmh::train {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

void check_keys(const json& j, const std::string& where, const std::set<std::string>& known) {
  if (!j.is_object()) fail(where, ": expected a JSON object, got ", j.type_name());
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!known.count(it.key())) {
      std::string k;
      for (const auto& x : known) k += (k.empty() ? "" : ", ") + x;
      fail(where, ": unknown key '", it.key(), "' (known: ", k, ")");
    }
}

template <class T> T get(const json& j, const std::string& where, const std::string& key, const T& dflt) {
  if (!j.contains(key)) return dflt;
  try {
    return j.at(key).get<T>();
  } catch (const json::exception&) {
    fail(where, ": key '", key, "' has the wrong type: ", j.at(key).dump());
  }
}

// A path the OS refuses to look up (a component too long, ...) counts as absent, so the caller's error names the key
// and the path instead of std::filesystem's own exception (found by fuzz_experiment: the model config path, then
// the data text path).
bool is_file(const std::string& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}
bool is_dir(const std::string& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

std::string resolve(const std::string& p, const std::string& base) {
  if (p.empty() || base.empty() || fs::path(p).is_absolute()) return p;
  return (fs::path(base) / p).string();
}

// A family config.json given as a file (any name) or a directory holding config.json.
ModelConfig load_config_path(const std::string& path) {
  if (is_dir(path)) return load_model_config(path);
  if (!is_file(path)) fail("model config ", path, " does not exist");
  static std::atomic<int> counter{0};
  const fs::path dir = fs::temp_directory_path() / ("bmh-config-" + std::to_string(getpid()) + "-" +
                                                    std::to_string(counter++));
  fs::create_directories(dir);
  fs::copy_file(path, dir / "config.json", fs::copy_options::overwrite_existing);
  try {
    ModelConfig cfg = load_model_config(dir.string());
    fs::remove_all(dir);
    cfg.name = fs::path(path).stem().string();
    return cfg;
  } catch (const Error& e) {
    fs::remove_all(dir);
    fail(path, ": ", e.what());
  }
}

Tensor to_dtype(const Tensor& t, DType d) {
  if (d == DType::F32) {
    std::vector<float> v = t.to_f32();
    return Tensor::from_f32(v, t.shape());
  }
  std::vector<double> v = t.to_f64();
  Tensor o = Tensor::zeros(DType::F64, t.shape());
  std::copy(v.begin(), v.end(), o.data_mut<double>());
  return o;
}

}  // namespace

TrainConfig train_config_from_json(const json& j, const std::string& where, const std::string& base) {
  check_keys(j, where,
             {"preset", "config", "init_from", "vocab_size", "seed", "backend", "dtype", "data", "seq_len", "batch",
              "accum", "steps", "flops", "lr", "min_lr", "warmup", "weight_decay", "beta1", "beta2", "eps",
              "grad_clip", "routing", "sinkhorn_init", "aux_loss_coef", "log_every", "eval_every", "eval_batches", "checkpoint_every"});
  TrainConfig c;
  c.json = j;
  c.preset = get<std::string>(j, where, "preset", "");
  c.config = resolve(get<std::string>(j, where, "config", ""), base);
  c.init_from = resolve(get<std::string>(j, where, "init_from", ""), base);
  if (int(!c.preset.empty()) + int(!c.config.empty()) + int(!c.init_from.empty()) != 1)
    fail(where, ": give exactly one of 'preset', 'config' and 'init_from'");
  c.vocab_size = get<int>(j, where, "vocab_size", 0);
  if (c.vocab_size < 0 || c.vocab_size > 65536) fail(where, ": vocab_size ", c.vocab_size, " (1..65536)");
  if (c.vocab_size && !c.init_from.empty()) fail(where, ": vocab_size cannot change a checkpoint's vocabulary");
  c.seed = get<uint64_t>(j, where, "seed", 0);
  c.backend = get<std::string>(j, where, "backend", "cpu");
  c.dtype = get<std::string>(j, where, "dtype", "fp32");
  if (c.backend != "cpu") fail(where, ": backend '", c.backend, "': training runs on the cpu reference only");
  if (c.dtype != "fp32" && c.dtype != "fp64") fail(where, ": dtype '", c.dtype, "' (fp32, fp64)");
  {
    const std::string w = where + ": data";
    if (!j.contains("data")) fail(where, ": missing 'data'");
    const json& d = j.at("data");
    check_keys(d, w, {"text", "bin_dir", "tokenizer", "val_fraction"});
    if (d.contains("text")) {
      if (d["text"].is_string()) c.data.text_files = {d["text"].get<std::string>()};
      else c.data.text_files = get<std::vector<std::string>>(d, w, "text", {});
    }
    for (auto& f : c.data.text_files) {
      f = resolve(f, base);
      if (!is_file(f)) fail(w, ": no such text file ", f);
    }
    c.data.bin_dir = resolve(get<std::string>(d, w, "bin_dir", ""), base);
    if (!c.data.bin_dir.empty() && !is_file(c.data.bin_dir + "/train.bin"))
      fail(w, ": no ", c.data.bin_dir, "/train.bin");
    if (c.data.text_files.empty() == c.data.bin_dir.empty()) fail(w, ": give exactly one of 'text' and 'bin_dir'");
    c.data.tokenizer = get<std::string>(d, w, "tokenizer", "bytes");
    if (c.data.tokenizer != "bytes" && c.data.tokenizer != "gpt-neox")
      fail(w, ": tokenizer '", c.data.tokenizer, "' (bytes, gpt-neox)");
    c.data.val_fraction = get<double>(d, w, "val_fraction", c.data.val_fraction);
  }
  c.seq_len = get<int>(j, where, "seq_len", c.seq_len);
  c.batch = get<int>(j, where, "batch", c.batch);
  c.accum = get<int>(j, where, "accum", c.accum);
  c.steps = get<int64_t>(j, where, "steps", 0);
  c.flops = get<double>(j, where, "flops", 0.0);
  if ((c.steps > 0) == (c.flops > 0)) fail(where, ": give exactly one of 'steps' and 'flops' (positive)");
  AdamWConfig& o = c.opt;
  o.lr = get<double>(j, where, "lr", o.lr);
  o.min_lr = get<double>(j, where, "min_lr", o.lr / 10);
  o.warmup_steps = get<int64_t>(j, where, "warmup", o.warmup_steps);
  o.weight_decay = get<double>(j, where, "weight_decay", o.weight_decay);
  o.beta1 = get<double>(j, where, "beta1", o.beta1);
  o.beta2 = get<double>(j, where, "beta2", o.beta2);
  o.eps = get<double>(j, where, "eps", o.eps);
  o.grad_clip = get<double>(j, where, "grad_clip", o.grad_clip);
  c.routing = get<std::string>(j, where, "routing", c.routing);
  c.sinkhorn_init = get<std::string>(j, where, "sinkhorn_init", c.sinkhorn_init);
  if (c.routing != "sinkhorn" && c.routing != "top1" && c.routing != "argmax")
    fail(where, ": routing '", c.routing, "' (sinkhorn, top1, argmax)");
  if (c.sinkhorn_init != "zyphra" && c.sinkhorn_init != "megatron")
    fail(where, ": sinkhorn_init '", c.sinkhorn_init, "' (zyphra, megatron)");
  c.aux_loss_coef = get<double>(j, where, "aux_loss_coef", -1.0);
  if (j.contains("aux_loss_coef") && !(c.aux_loss_coef >= 0 && std::isfinite(c.aux_loss_coef)))
    fail(where, ": aux_loss_coef ", c.aux_loss_coef, " must be finite and >= 0");
  c.log_every = get<int>(j, where, "log_every", c.log_every);
  c.eval_every = get<int>(j, where, "eval_every", c.eval_every);
  c.eval_batches = get<int>(j, where, "eval_batches", c.eval_batches);
  c.checkpoint_every = get<int64_t>(j, where, "checkpoint_every", 0);
  for (auto [k, v] : {std::pair<const char*, int64_t>{"seq_len", c.seq_len - 1}, {"batch", c.batch},
                      {"accum", c.accum}, {"log_every", c.log_every}, {"eval_every", c.eval_every},
                      {"eval_batches", c.eval_batches}})
    if (v < 1) fail(where, ": '", k, "' is too small");
  if (c.checkpoint_every < 0 || o.warmup_steps < 0 || !(o.lr > 0) || o.min_lr < 0 || o.weight_decay < 0 ||
      o.grad_clip < 0 || !(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1) || !(o.eps > 0))
    fail(where, ": an optimizer setting is out of range (lr > 0, betas in [0, 1), eps > 0, others >= 0)");
  return c;
}

double aux_loss_coef_for(const TrainConfig& c, const ModelConfig& cfg) {
  if (c.aux_loss_coef >= 0) return c.aux_loss_coef;
  for (int b : cfg.moe_blocks())
    if (cfg.blocks[size_t(b)].ffn.router == RouterKind::SoftmaxTopK) return 0.02;
  return 0.0;
}

ModelConfig resolve_model_config(const TrainConfig& c) {
  ModelConfig cfg;
  if (!c.init_from.empty()) cfg = load_model_config(c.init_from);
  else if (!c.config.empty()) cfg = load_config_path(c.config);
  else cfg = preset_config(c.preset);
  if (c.vocab_size > 0) cfg.vocab_size = c.vocab_size;
  cfg.family = layout_family(cfg);
  return cfg;
}

ModelStart resolve_model(const TrainConfig& c) {
  ModelStart s;
  s.cfg = resolve_model_config(c);
  s.family = s.cfg.family;
  const DType dt = c.dtype == "fp64" ? DType::F64 : DType::F32;
  if (!c.init_from.empty()) {
    for (auto& [name, t] : canonicalize_weights(s.cfg, load_checkpoint_dir(c.init_from))) s.weights[name] = to_dtype(t, dt);
  } else {
    s.weights = init_weights(s.cfg, s.family, c.seed, dt);
  }
  return s;
}

}  // namespace bmh::train

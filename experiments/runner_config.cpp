// Experiment files: parsing and every check that can be made before a model is loaded.
#include "experiments/runner_config.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/hub_cache.h"
#include "core/json_bounded.h"
#include "core/presets.h"
#include "core/router.h"
#include "evals/task_registry.h"
#include "train/train_config.h"

namespace bmh::run {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::vector<std::string>& step_names() {
  static const std::vector<std::string> s = {"train", "info", "forward", "generate", "flops", "latency", "routing",
                                             "eval"};
  return s;
}

std::string arch_of(const ModelConfig& cfg) {
  bool mamba = false, attn = false, moe = false;
  for (const auto& b : cfg.blocks) {
    mamba |= b.mixer == MixerKind::Mamba;
    attn |= b.mixer == MixerKind::Attention;
    moe |= b.mlp == MlpKind::Moe;
  }
  if (mamba && !attn) return moe ? "blackmamba" : "mamba";
  if (attn && !mamba) return moe ? "transformer-moe" : "transformer";
  if (attn && mamba) return moe ? "hybrid-moe" : "hybrid";  // Jamba
  return "other";
}

std::string source_dir() {
  // The checkout this binary was built from; BMH_SOURCE_DIR in the environment points a copied binary elsewhere.
  const char* env = std::getenv("BMH_SOURCE_DIR");
  return env && *env ? env : BMH_SOURCE_DIR;
}

std::string resolve_data_path(const std::string& p) {
  if (p.empty() || fs::path(p).is_absolute()) return p;
  return (fs::path(source_dir()) / p).string();
}

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

template <class T> struct is_int_vector : std::false_type {};
template <class I> struct is_int_vector<std::vector<I>> : std::is_integral<I> {};

// A JSON object whose keys are all checked: get() marks a key as used, done() rejects the rest by name.
struct Obj {
  const json& j;
  std::string where;  // "default.json: latency"
  std::set<std::string> allowed;

  Obj(const json& j_, std::string w, std::set<std::string> keys) : j(j_), where(std::move(w)), allowed(std::move(keys)) {
    if (!j.is_object()) fail(where, ": expected a JSON object, got ", j.type_name());
    for (auto it = j.begin(); it != j.end(); ++it)
      if (!allowed.count(it.key()))
        fail(where, ": unknown key '", it.key(), "' (known: ", join({allowed.begin(), allowed.end()}), ")");
  }
  bool has(const std::string& k) const { return j.contains(k); }
  template <class T> T get(const std::string& k, const T& dflt) const {
    if (!j.contains(k)) return dflt;
    const json& v = j.at(k);
    // get<int> would wrap 2^32 + 5 to 5 and truncate 2.5 to 2: integers must be integers that fit.
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      if (!v.is_number_integer() || !json_int_fits<T>(v))
        fail(where, ": key '", k, "' = ", json_brief(v), " is not an integer that fits (", v.type_name(), ")");
    } else if constexpr (is_int_vector<T>::value) {
      if (v.is_array())
        for (size_t i = 0; i < v.size(); ++i)
          if (!v[i].is_number_integer() || !json_int_fits<typename T::value_type>(v[i]))
            fail(where, ": key '", k, "'[", i, "] = ", json_brief(v[i]), " is not an integer that fits");
    }
    try {
      return v.get<T>();
    } catch (const json::exception&) {
      fail(where, ": key '", k, "' has the wrong type (", v.type_name(), "): ", json_brief(v));
    }
  }
  template <class T> T need(const std::string& k) const {
    if (!j.contains(k)) fail(where, ": missing required key '", k, "'");
    return get<T>(k, T{});
  }
  const json& sub(const std::string& k) const {
    static const json empty = json::object();
    return j.contains(k) ? j.at(k) : empty;
  }
};

void check_positive(const std::string& where, const std::string& key, int64_t v, int64_t min = 1) {
  if (v < min) fail(where, ": '", key, "' must be >= ", min, " (got ", v, ")");
}

void check_steps(const std::string& where, const std::vector<std::string>& steps) {
  if (steps.empty()) fail(where, ": no steps given (known: ", join(step_names()), ")");
  std::set<std::string> seen;
  for (const auto& s : steps) {
    if (std::find(step_names().begin(), step_names().end(), s) == step_names().end())
      fail(where, ": unknown step '", s, "' (known: ", join(step_names()), ")");
    if (!seen.insert(s).second) fail(where, ": step '", s, "' is listed twice");
  }
}

void check_file(const std::string& where, const std::string& path) {
  std::error_code ec;  // a name the OS refuses (too long, ...) is a missing file, not a filesystem_error
  if (!fs::is_regular_file(path, ec)) fail(where, ": no such file ", path);
}

void check_name(const std::string& where, const std::string& name) {
  if (name.empty()) fail(where, ": empty name");
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      fail(where, ": name '", name, "' may only hold letters, digits, '-', '_' and '.'");
}

ModelEntry parse_model(const json& j, const std::string& where, const LoadOptions& opt,
                       const std::string& backend, const std::string& dtype) {
  Obj o(j, where, {"name", "label", "arch", "preset", "dir", "config", "vocab_size", "seed", "backend", "dtype",
                   "expert_act", "download", "note", "train_tokens", "steps", "router_precision"});
  ModelEntry m;
  m.name = o.need<std::string>("name");
  check_name(where, m.name);
  const std::string w = where + " '" + m.name + "'";
  m.label = o.get<std::string>("label", m.name);
  m.spec.preset = o.get<std::string>("preset", "");
  m.spec.dir = o.get<std::string>("dir", "");
  m.config_file = o.get<std::string>("config", "");
  if (int(!m.spec.preset.empty()) + int(!m.spec.dir.empty()) + int(!m.config_file.empty()) != 1)
    fail(w, ": give exactly one of 'preset', 'dir' and 'config'");
  const int vocab = o.get<int>("vocab_size", 0);
  if (vocab && m.spec.preset.empty()) fail(w, ": 'vocab_size' applies to presets only");
  m.spec.seed = o.get<uint64_t>("seed", 0);
  m.spec.backend = opt.backend.empty() ? o.get<std::string>("backend", backend) : opt.backend;
  m.spec.dtype = opt.dtype.empty() ? o.get<std::string>("dtype", dtype) : opt.dtype;
  if (m.spec.backend != "cpu" && m.spec.backend != "cuda")
    fail(w, ": unknown backend '", m.spec.backend, "' (cpu, cuda)");
  const bool cpu_dtype = m.spec.dtype == "fp32" || m.spec.dtype == "fp64";
  const bool cuda_dtype = m.spec.dtype == "fp32" || m.spec.dtype == "bf16" || m.spec.dtype == "fp16";
  if (m.spec.backend == "cpu" && !cpu_dtype)
    fail(w, ": dtype '", m.spec.dtype, "' is not one of the cpu backend's (fp32, fp64; e.g. --backend cpu --dtype fp32)");
  if (m.spec.backend == "cuda" && !cuda_dtype)
    fail(w, ": dtype '", m.spec.dtype, "' is not one of the cuda backend's (fp32, bf16, fp16)");
#ifndef BMH_HAVE_CUDA
  if (m.spec.backend == "cuda")
    fail(w, ": needs the cuda backend, but this bmh was built without nvcc (run with --backend cpu)");
#endif
  m.spec.router_precision =
      opt.router_precision.empty() ? o.get<std::string>("router_precision", "fp32") : opt.router_precision;
  try {
    parse_router_precision(m.spec.router_precision);
  } catch (const Error& e) {
    fail(w, ": router_precision: ", e.what());
  }
  const std::string act = o.get<std::string>("expert_act", "");
  if (!act.empty()) {
    if (!activation_from_string(act, &m.spec.config.expert_act)) fail(w, ": unknown expert_act '", act, "'");
    m.spec.config.override_expert_act = true;
  }
  m.download = o.get<std::string>("download", "");
  m.note = o.get<std::string>("note", "");
  m.train_tokens = o.get<double>("train_tokens", 0.0);
  m.steps = o.get<std::vector<std::string>>("steps", {});
  if (o.has("steps")) check_steps(w + ": steps", m.steps);

  ModelConfig cfg;
  if (!m.config_file.empty()) {
    m.config_file = resolve_data_path(m.config_file);
    train::TrainConfig tc;
    tc.config = m.config_file;
    try {
      cfg = train::resolve_model_config(tc);
    } catch (const Error& e) {
      fail(w, ": ", e.what());
    } catch (const fs::filesystem_error& e) {  // any other filesystem failure reading it (refused names are "absent")
      fail(w, ": config ", m.config_file, ": ", e.code().message());
    }
  } else if (!m.spec.preset.empty()) {
    try {
      cfg = preset_config(m.spec.preset);
      if (vocab) cfg.vocab_size = vocab;
    } catch (const Error& e) {
      fail(w, ": ", e.what());
    }
  } else {
    std::string d = m.spec.dir;
    const std::string var = "${models_dir}";
    if (auto p = d.find(var); p != std::string::npos) {
      if (opt.models_dir.empty())
        fail(w, ": its dir ", d, " needs --models-dir (the folder holding the downloaded checkpoints)");
      d.replace(p, var.size(), opt.models_dir);
    } else if (std::error_code ec; looks_like_hub_id(d) && !fs::exists(resolve_data_path(d), ec)) {
      try {
        d = resolve_model_dir(d);  // org/name[@revision] from the Hugging Face cache
      } catch (const Error& e) {
        fail(w, ": ", e.what());
      }
    } else {
      d = resolve_data_path(d);
    }
    m.spec.dir = d;
    std::error_code ec;  // a dir name the OS refuses (too long, ...) counts as not downloaded
    m.missing = !fs::is_regular_file(fs::path(d) / "config.json", ec);
    if (!m.missing) {
      try {
        cfg = load_model_config(d, m.spec.config);
      } catch (const Error& e) {
        fail(w, ": ", e.what());
      }
    }
  }
  m.arch = o.get<std::string>("arch", m.missing ? "other" : arch_of(cfg));
  m.cfg = cfg;
  m.json = {{"name", m.name}, {"preset", m.spec.preset}, {"dir", m.spec.dir}, {"seed", m.spec.seed},
            {"backend", m.spec.backend}, {"dtype", m.spec.dtype}, {"expert_act", act},
            {"router_precision", m.spec.router_precision}};
  if (!m.config_file.empty()) m.json["config"] = o.get<std::string>("config", "");  // as written: source-relative
  if (vocab) m.json["vocab_size"] = vocab;
  return m;
}

TextSource parse_source(const json& j, const std::string& where, bool check_files) {
  Obj o(j, where, {"name", "file", "task", "sequences", "limit"});
  TextSource s;
  s.file = o.get<std::string>("file", "");
  s.task = o.get<std::string>("task", "");
  if (s.file.empty() == s.task.empty()) fail(where, ": give exactly one of 'file' and 'task'");
  s.name = o.get<std::string>("name", s.task.empty() ? fs::path(s.file).filename().string() : s.task);
  s.sequences = o.get<int>("sequences", s.sequences);
  s.limit = o.get<int>("limit", s.limit);
  check_positive(where, "sequences", s.sequences);
  check_positive(where, "limit", s.limit);
  if (!s.file.empty()) {
    s.file = resolve_data_path(s.file);
    if (check_files) check_file(where, s.file);
  } else {
    eval::parse_task_list(s.task);  // names the known tasks when unknown
  }
  return s;
}

}  // namespace

json ExperimentConfig::step_section(const std::string& step) const {
  if (step == "forward") return {{"text", forward_text}, {"tokens", forward_tokens}};
  if (step == "generate") return {{"prompt", generate_prompt}, {"tokens", generate_tokens}};
  if (step == "flops")
    return {{"contexts", flops_contexts}, {"reference_context", flops_reference_context},
            {"weight_bytes", weight_bytes}, {"state_bytes", state_bytes}};
  if (step == "latency")
    return {{"prompt_lengths", latency.prompt_lengths}, {"batch", latency.batch},
            {"decode_prompt", latency.decode_prompt}, {"decode_tokens", latency.decode_tokens},
            {"warmup", latency.warmup}, {"repeats", latency.repeats}, {"seed", latency.seed}};
  if (step == "routing") {
    json s = json::array();
    for (const auto& r : routing_sources)
      s.push_back({{"name", r.name}, {"file", r.file}, {"task", r.task}, {"sequences", r.sequences}, {"limit", r.limit}});
    return {{"sources", s}, {"seq_len", routing_seq_len}, {"batch", routing_batch}, {"top_tokens", routing_top_tokens}};
  }
  if (step == "eval")
    return {{"tasks", eval_tasks}, {"limit", eval_limit}, {"bootstrap_iters", eval_bootstrap_iters}};
  if (step == "train") return train;
  return json::object();
}

bool ExperimentConfig::trains(const ModelEntry& m) const {
  return std::count(m.steps.begin(), m.steps.end(), "train") > 0;
}

bool ExperimentConfig::selected(const ModelEntry& m, const std::string& step) const {
  auto in = [](const std::vector<std::string>& v, const std::string& x) {
    return v.empty() || std::find(v.begin(), v.end(), x) != v.end();
  };
  return in(only_models, m.name) && in(only_steps, step) && std::count(m.steps.begin(), m.steps.end(), step) > 0;
}

ExperimentConfig load_experiment(const std::string& path, const LoadOptions& opt) {
  std::ifstream in(path);
  if (!in) fail("cannot open experiment file ", path);
  std::stringstream ss;
  ss << in.rdbuf();
  ExperimentConfig c;
  c.path = path;
  const std::string file = fs::path(path).filename().string();
  c.raw = parse_json_bounded(ss.str(), path);
  Obj top(c.raw, file, {"name", "description", "backend", "dtype", "models", "steps", "forward", "generate", "flops",
                        "latency", "routing", "eval", "train"});
  c.name = top.need<std::string>("name");
  check_name(file + ": name", c.name);
  c.description = top.get<std::string>("description", "");
  const std::string backend = top.get<std::string>("backend", "cpu"), dtype = top.get<std::string>("dtype", "fp32");
  c.steps = top.need<std::vector<std::string>>("steps");
  check_steps(file + ": steps", c.steps);
  // Whether any model runs a step (its own "steps" or the experiment's): data files are checked only then.
  auto uses = [&](const std::string& step) {
    if (std::count(c.steps.begin(), c.steps.end(), step)) return true;
    const json& ms = top.sub("models");
    if (ms.is_array())
      for (const auto& m : ms)
        if (m.is_object() && m.contains("steps") && m["steps"].is_array())
          for (const auto& s : m["steps"])
            if (s.is_string() && s.get<std::string>() == step) return true;
    return false;
  };

  {
    Obj o(top.sub("forward"), file + ": forward", {"text", "tokens"});
    c.forward_text = resolve_data_path(o.get<std::string>("text", "data/text/wiki.test.raw"));
    c.forward_tokens = o.get<int>("tokens", c.forward_tokens);
    check_positive(o.where, "tokens", c.forward_tokens, 2);
    if (uses("forward")) check_file(o.where, c.forward_text);
  }
  {
    Obj o(top.sub("generate"), file + ": generate", {"prompt", "tokens"});
    c.generate_prompt = o.get<std::string>("prompt", "The history of the region begins");
    c.generate_tokens = o.get<int>("tokens", c.generate_tokens);
    check_positive(o.where, "tokens", c.generate_tokens);
    if (c.generate_prompt.empty()) fail(o.where, ": empty prompt");
  }
  {
    Obj o(top.sub("flops"), file + ": flops", {"contexts", "reference_context", "weight_bytes", "state_bytes"});
    c.flops_contexts = o.get<std::vector<int64_t>>("contexts", {128, 512, 2048, 8192, 32768});
    c.flops_reference_context = o.get<int64_t>("reference_context", c.flops_reference_context);
    c.weight_bytes = o.get<int>("weight_bytes", c.weight_bytes);
    c.state_bytes = o.get<int>("state_bytes", c.state_bytes);
    if (c.flops_contexts.empty()) fail(o.where, ": no contexts");
    for (auto x : c.flops_contexts) check_positive(o.where, "contexts", x);
    check_positive(o.where, "reference_context", c.flops_reference_context);
    check_positive(o.where, "weight_bytes", c.weight_bytes);
    check_positive(o.where, "state_bytes", c.state_bytes);
  }
  {
    Obj o(top.sub("latency"), file + ": latency",
          {"prompt_lengths", "batch", "decode_prompt", "decode_tokens", "warmup", "repeats", "seed"});
    LatencyOptions& l = c.latency;
    l.prompt_lengths = o.get<std::vector<int>>("prompt_lengths", l.prompt_lengths);
    l.batch = o.get<int>("batch", l.batch);
    l.decode_prompt = o.get<int>("decode_prompt", l.decode_prompt);
    l.decode_tokens = o.get<int>("decode_tokens", l.decode_tokens);
    l.warmup = o.get<int>("warmup", l.warmup);
    l.repeats = o.get<int>("repeats", l.repeats);
    l.seed = o.get<uint64_t>("seed", l.seed);
    for (int x : l.prompt_lengths) check_positive(o.where, "prompt_lengths", x);
    check_positive(o.where, "batch", l.batch);
    check_positive(o.where, "decode_prompt", l.decode_prompt);
    check_positive(o.where, "decode_tokens", l.decode_tokens, 0);
    check_positive(o.where, "warmup", l.warmup, 0);
    check_positive(o.where, "repeats", l.repeats);
  }
  {
    Obj o(top.sub("routing"), file + ": routing", {"sources", "seq_len", "batch", "top_tokens"});
    c.routing_seq_len = o.get<int>("seq_len", c.routing_seq_len);
    c.routing_batch = o.get<int>("batch", c.routing_batch);
    c.routing_top_tokens = o.get<int>("top_tokens", c.routing_top_tokens);
    check_positive(o.where, "seq_len", c.routing_seq_len, 2);
    check_positive(o.where, "batch", c.routing_batch);
    check_positive(o.where, "top_tokens", c.routing_top_tokens, 0);
    const json& src = o.sub("sources");
    if (o.has("sources") && !src.is_array()) fail(o.where, ": 'sources' must be an array");
    for (size_t i = 0; i < src.size(); ++i)
      c.routing_sources.push_back(
          parse_source(src[i], o.where + ": sources[" + std::to_string(i) + "]", uses("routing")));
    if (c.routing_sources.empty())
      c.routing_sources.push_back(parse_source({{"file", "data/text/wiki.test.raw"}}, o.where, uses("routing")));
    std::set<std::string> names;
    for (const auto& s : c.routing_sources)
      if (!names.insert(s.name).second) fail(o.where, ": two sources are named '", s.name, "'");
  }
  {
    Obj o(top.sub("eval"), file + ": eval", {"tasks", "limit", "batch_size", "bootstrap_iters"});
    c.eval_tasks = o.get<std::vector<std::string>>("tasks", eval::task_names());
    for (const auto& t : c.eval_tasks) eval::parse_task_list(t);
    c.eval_limit = o.get<int64_t>("limit", c.eval_limit);
    c.eval_batch_size = o.get<int>("batch_size", c.eval_batch_size);
    c.eval_bootstrap_iters = o.get<int>("bootstrap_iters", c.eval_bootstrap_iters);
    check_positive(o.where, "limit", c.eval_limit, 0);
    check_positive(o.where, "batch_size", c.eval_batch_size);
    check_positive(o.where, "bootstrap_iters", c.eval_bootstrap_iters, 0);
  }

  {
    // Checked in full with a stand-in model (the real one comes from each model entry).
    c.train = top.sub("train");
    for (const char* k : {"preset", "config", "init_from", "seed", "vocab_size"})
      if (c.train.contains(k)) fail(file, ": train: '", k, "' belongs in each model entry, not the train section");
    if (uses("train")) {
      json probe = c.train;
      probe["preset"] = "tiny-mamba-50k";
      train::train_config_from_json(probe, file + ": train", source_dir());
    }
  }

  const json& models = top.sub("models");
  if (!models.is_array() || models.empty()) fail(file, ": 'models' must be a non-empty array");
  std::set<std::string> names;
  for (size_t i = 0; i < models.size(); ++i) {
    ModelEntry m = parse_model(models[i], file + ": models[" + std::to_string(i) + "]", opt, backend, dtype);
    if (!names.insert(m.name).second) fail(file, ": two models are named '", m.name, "'");
    if (m.steps.empty()) m.steps = c.steps;
    if (!m.config_file.empty() && !c.trains(m))
      fail(file, ": model '", m.name, "' names a config without weights; it needs the 'train' step");
    c.models.push_back(std::move(m));
  }

  // --models / --steps restrict the run; every name must exist.
  for (const auto& n : opt.only_models)
    if (!names.count(n)) {
      std::vector<std::string> all;
      for (const auto& m : c.models) all.push_back(m.name);
      fail(file, ": --models names unknown model '", n, "' (in this file: ", join(all), ")");
    }
  if (!opt.only_steps.empty()) check_steps("--steps", opt.only_steps);
  c.only_models = opt.only_models;
  c.only_steps = opt.only_steps;
  return c;
}

}  // namespace bmh::run

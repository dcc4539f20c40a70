// bmh train [CONFIG.json] [flags]: trains a model on the CPU reference (train/trainer.h) and writes
// <out>/checkpoint/ (the family's own layout, readable by every bmh command), <out>/results.json,
// <out>/results.h5 and <out>/training_*.png. Rerunning the same command resumes from the checkpoint.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "evals/model_loader.h"
#include "experiments/command.h"
#include "experiments/runner.h"
#include "train/trainer.h"

namespace bmh {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct TrainArgs {
  std::string config_file, out;
  bool fresh = false, no_plots = false;
  int64_t stop_after = 0;
  std::string python = "/usr/bin/python3";
  json flags = json::object();  // flags given on the command line, overriding the file
};

void run_train(TrainArgs& a) {
  json j = json::object();
  if (!a.config_file.empty()) {
    std::ifstream in(a.config_file);
    if (!in) fail("cannot open ", a.config_file);
    try {
      j = json::parse(in);
    } catch (const json::exception& e) {
      fail(a.config_file, ": invalid JSON: ", e.what());
    }
    if (!j.is_object()) fail(a.config_file, ": expected a JSON object");
  }
  for (auto it = a.flags.begin(); it != a.flags.end(); ++it) {
    if (it.key() == "data") {
      if (!j.contains("data")) j["data"] = json::object();
      for (auto d = it->begin(); d != it->end(); ++d) j["data"][d.key()] = d.value();
    } else {
      j[it.key()] = it.value();
    }
  }
  // A model source from the command line replaces the file's.
  for (const char* k : {"preset", "config", "init_from"})
    if (a.flags.contains(k))
      for (const char* other : {"preset", "config", "init_from"})
        if (std::string(other) != k) j.erase(other);
  if (a.flags.contains("steps")) j.erase("flops");
  if (a.flags.contains("flops")) j.erase("steps");
  const std::string where = a.config_file.empty() ? "bmh train" : a.config_file;
  train::TrainConfig c = train::train_config_from_json(j, where, fs::current_path().string());
  if (a.out.empty()) fail("bmh train: give --out DIR (checkpoint, results.json, results.h5)");
  fs::create_directories(a.out);
  train::TokenData data = train::TokenData::load(c.data);
  std::printf("bmh train -> %s\n  data %s; held-out unigram entropy %.4f nats\n", a.out.c_str(),
              data.describe().c_str(), data.val_unigram_entropy());
  std::fflush(stdout);
  train::TrainRunOptions opt;
  opt.out_dir = a.out;
  opt.fresh = a.fresh;
  opt.stop_after = a.stop_after;
  opt.say = [](const std::string& s) {
    std::printf("  %s\n", s.c_str());
    std::fflush(stdout);
  };
  const std::string backend = c.backend, dtype = c.dtype;
  train::TrainOutcome t = train::run_training(
      c, data, [&](const ModelConfig& cfg, const TensorMap& w) { return make_trainable(cfg, w, backend, dtype); },
      opt);
  {
    h5::File f(a.out + "/results.h5");
    h5::Group root = f.root();
    root.attr("command", "bmh train");
    root.attr("config", c.json.dump());
    write_training_h5(t, root.group("train"));
    f.commit();
  }
  json log = json::array();
  for (const auto& r : t.log) log.push_back(train::to_json(r));
  json results = {{"command", "train"}, {"config", c.json}, {"model", t.cfg.name}, {"summary", t.summary},
                  {"log", log}, {"results_h5", "results.h5"}};
  run::write_text_atomic(a.out + "/results.json", results.dump(1) + "\n");
  const json& s = t.summary;
  std::printf("%s after %lld steps (%.3g training FLOPs, %.3g tokens): held-out loss %.4f vs unigram entropy %.4f "
              "nats (%s); %.1f s\n  checkpoint %s\n",
              s.value("finished", false) ? "finished" : "stopped", (long long)s.value("steps", int64_t(0)),
              s.value("training_flops", 0.0), s.value("tokens", 0.0), s.value("final_val_loss", -1.0),
              s.value("val_unigram_entropy", 0.0), s.value("below_unigram_entropy", false) ? "below" : "NOT below",
              t.seconds, s.value("checkpoint", "").c_str());
  if (!a.no_plots) {
    const std::string script = run::source_dir() + "/scripts/plot_training.py";
    const std::string cmd = "'" + a.python + "' '" + script + "' '" + a.out + "/results.h5' '" + a.out + "' 2>&1";
    if (std::system(cmd.c_str()) != 0) std::printf("plots: %s failed (needs matplotlib and h5py)\n", script.c_str());
  }
}

void add_train_command(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto* sub = app.add_subcommand("train", "train a model on the CPU reference (AdamW, warmup + cosine, Sinkhorn "
                                          "routing for switch MLPs); resumes from <out>/checkpoint");
  sub->add_option("config", a->config_file, "JSON file of settings (keys: train/train_config.h); flags override it");
  sub->add_option("--out", a->out, "output directory (checkpoint/, results.json, results.h5, plots)")->required();
  auto str = [&](const char* flag, const char* key, const char* help) {
    sub->add_option_function<std::string>(flag, [a, key](const std::string& v) { a->flags[key] = v; }, help);
  };
  auto num = [&](const char* flag, const char* key, const char* help) {
    sub->add_option_function<double>(flag, [a, key](double v) { a->flags[key] = v; }, help);
  };
  auto integer = [&](const char* flag, const char* key, const char* help) {
    sub->add_option_function<int64_t>(flag, [a, key](int64_t v) { a->flags[key] = v; }, help);
  };
  str("--preset", "preset", "start from a preset's shape (family initialisation)");
  str("--config", "config", "start from a family config.json (file or directory; family initialisation)");
  str("--init-from", "init_from", "start from a checkpoint directory's weights");
  integer("--vocab", "vocab_size", "replace the vocabulary size (256 for --tokenizer bytes)");
  integer("--seed", "seed", "initialisation and batch-order seed");
  str("--dtype", "dtype", "fp32 | fp64");
  sub->add_option_function<std::vector<std::string>>(
      "--text", [a](const std::vector<std::string>& v) { a->flags["data"]["text"] = v; }, "text file(s) to train on");
  sub->add_option_function<std::string>(
      "--bin-dir", [a](const std::string& v) { a->flags["data"]["bin_dir"] = v; },
      "nanoGPT token shards: DIR/train.bin and DIR/val.bin (uint16)");
  sub->add_option_function<std::string>(
      "--tokenizer", [a](const std::string& v) { a->flags["data"]["tokenizer"] = v; }, "bytes | gpt-neox (text)");
  sub->add_option_function<double>(
      "--val-fraction", [a](double v) { a->flags["data"]["val_fraction"] = v; }, "held-out fraction of each text");
  integer("--seq-len", "seq_len", "tokens per sequence");
  integer("--batch", "batch", "sequences per micro-batch");
  integer("--accum", "accum", "micro-batches per optimizer step (gradient accumulation)");
  integer("--steps", "steps", "optimizer steps");
  num("--flops", "flops", "training-FLOPs budget instead of --steps");
  num("--lr", "lr", "peak learning rate");
  num("--min-lr", "min_lr", "final learning rate of the cosine");
  integer("--warmup", "warmup", "linear warmup steps");
  num("--weight-decay", "weight_decay", "AdamW weight decay (matrices only; not A_log, D, biases, norms)");
  num("--grad-clip", "grad_clip", "global gradient-norm clip (0: off)");
  str("--routing", "routing", "switch-MLP training routing: sinkhorn | top1 | argmax");
  num("--aux-loss-coef", "aux_loss_coef",
      "weight of the Switch load-balancing loss (transformers load_balancing_loss_func); default 0.02 (Mixtral-8x7B's "
      "router_aux_loss_coef) for softmax top-k MoE, else 0");
  str("--sinkhorn-init", "sinkhorn_init", "zyphra (exp(2x), d1 = 1/(E colsum)) | megatron (exp(x), d1 = 1)");
  integer("--log-every", "log_every", "steps between log rows");
  integer("--eval-every", "eval_every", "steps between held-out evaluations");
  integer("--eval-batches", "eval_batches", "held-out batches per evaluation");
  integer("--checkpoint-every", "checkpoint_every", "steps between checkpoints (0: at the end only)");
  sub->add_flag("--fresh", a->fresh, "start over even where <out>/checkpoint exists");
  sub->add_option("--stop-after", a->stop_after, "stop after this many steps of this invocation (resume later)");
  sub->add_flag("--no-plots", a->no_plots, "do not run scripts/plot_training.py");
  sub->add_option("--python", a->python, "Python with matplotlib and h5py for the plots");
  sub->callback([a] { run_train(*a); });
}

const bool registered = register_command(&add_train_command);

}  // namespace
}  // namespace bmh

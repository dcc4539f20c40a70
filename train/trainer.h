// The training loop: for each optimizer step, `accum` micro-batches through loss_and_grad (gradients averaged),
// global-norm clipping, the scheduled learning rate, AdamW; every `log_every` steps a log row (train loss, lr,
// gradient norm, tokens/s, expert load and its CV per MoE layer), every `eval_every` steps the held-out loss
// (inference routing, fixed windows), every `checkpoint_every` steps and at the end a checkpoint.
//
// Checkpoints (<out>/checkpoint/, replaced atomically: written as checkpoint.tmp.<pid>/, then swapped in by
// renames, a leftover checkpoint.prev/ recovered on start) hold the model in its family's layout
// (train/family_layout.h: every bmh command reads it), optimizer.safetensors (AdamW's exp_avg/exp_avg_sq) and
// trainer_state.json (step, the log so far, the config's fingerprint). The batch sampler is a hash of
// (seed, step) (train/data.h), so the step is the whole data position and RNG state: a run resumed from a
// checkpoint on the CPU continues the uninterrupted run's loss curve bit for bit.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/trainable.h"
#include "evals/h5_writer.h"
#include "train/data.h"
#include "train/train_config.h"

namespace bmh::train {

using TrainableFactory =
    std::function<std::unique_ptr<TrainableModel>(const ModelConfig&, const TensorMap& weights)>;

struct LogRow {
  int64_t step = 0;                 // optimizer steps done
  double tokens = 0, flops = 0;     // training tokens and FLOPs so far
  double lr = 0, train_loss = 0, grad_norm = 0, tokens_per_s = 0, seconds = 0;
  double val_loss = -1;             // < 0: not evaluated at this row
  double val_loss_train_routing = -1;  // MoE: the same held-out loss routed as in training (e.g. Sinkhorn)
  std::vector<std::vector<int64_t>> expert_counts;  // per MoE layer [E], tokens routed since the previous row
  int64_t sinkhorn_iterations = 0, sinkhorn_unconverged = 0;
  double aux_loss = -1;             // MoE: mean load-balancing loss E sum f P over the row's steps (unweighted)
};
nlohmann::json to_json(const LogRow& r);
LogRow log_row_from_json(const nlohmann::json& j);

struct TrainOutcome {
  ModelConfig cfg;
  std::vector<LogRow> log;
  int64_t steps = 0;
  double flops_per_token = 0;       // training FLOPs per token (train/training_flops.h)
  double seconds = 0;               // this invocation's wall time
  bool resumed = false;
  int64_t resumed_from = 0;
  nlohmann::json summary;           // final losses, entropy, FLOPs, parameters, routing balance
  TensorMap parameters;             // the trained weights (canonical names), as the checkpoint holds them
};

struct TrainRunOptions {
  std::string out_dir;              // checkpoint/ lives here
  bool fresh = false;               // ignore an existing checkpoint
  bool restart_on_mismatch = false; // a checkpoint of other settings: start over (else an error)
  int64_t stop_after = 0;           // > 0: stop (without finishing) after this many steps (tests)
  std::function<void(const std::string&)> say;  // progress lines
};

TrainOutcome run_training(const TrainConfig& c, const TokenData& data, const TrainableFactory& factory,
                          const TrainRunOptions& opt);

// Writes the run's arrays (self-described) under g.
void write_training_h5(const TrainOutcome& t, h5::Group g);

}  // namespace bmh::train

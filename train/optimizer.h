// AdamW, its learning-rate schedule and gradient clipping, as PyTorch and nanoGPT define them:
//  * torch/optim/adamw.py (_single_tensor_adamw): p *= 1 - lr*wd; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
//    p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps), with m, v in the parameter's dtype.
//  * Weight decay only on matrices: no decay on 1-D parameters (biases, norm weights) nor on A_log and D, which
//    Zyphra's mamba_layer.py (and mamba_ssm's mamba_simple.py) mark _no_weight_decay.
//  * Schedule (nanoGPT train.py get_lr): linear warmup lr*(it+1)/(warmup+1), then cosine from lr down to min_lr
//    at max_steps, min_lr after.
//  * Clipping (torch/nn/utils/clip_grad.py clip_grad_norm_): total = sqrt(sum of squares of every gradient);
//    gradients scaled by max_norm / (total + 1e-6) when that is below 1.
#pragma once
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace bmh::train {

struct AdamWConfig {
  double lr = 3e-3, min_lr = 3e-4;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;
  int64_t warmup_steps = 20;
  double grad_clip = 1.0;      // 0 = no clipping
};

double lr_at(const AdamWConfig& c, int64_t step, int64_t max_steps);
// Whether `name` (canonical, core/model_weights.h) of this shape is weight-decayed.
bool decays(const std::string& name, const Shape& shape);
// Global L2 norm of all gradients (accumulated in double).
double grad_norm(const TensorMap& grads);
void scale(TensorMap& grads, double factor);
// Clips in place; returns the norm before clipping.
double clip_grad_norm(TensorMap& grads, double max_norm);

class AdamW {
 public:
  // The parameters are updated in place; m and v start at zero with the parameters' dtypes.
  AdamW(TensorMap& params, AdamWConfig cfg);
  void step(const TensorMap& grads, double lr);
  int64_t steps_taken() const { return t_; }
  // exp_avg.<name>, exp_avg_sq.<name> (the names torch's AdamW state uses), for checkpoints.
  TensorMap state() const;
  void load_state(const TensorMap& state, int64_t steps_taken);

 private:
  TensorMap& params_;
  AdamWConfig cfg_;
  TensorMap m_, v_;
  int64_t t_ = 0;
};

}  // namespace bmh::train

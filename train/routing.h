// Training-time routing of top-1 switch MLPs, as RoutingHooks (core/trainable.h): the hook only chooses each
// row's expert; the model scales the expert's output by the sigmoid of the chosen logit, and the gradient flows
// through that gate (Zyphra switch_mlp.py; Megatron-LM's TopKRouter applies the same sigmoid for top-1).
//  * sinkhorn (BlackMamba's training routing): without gradient, in fp32, over all B*T rows of the step,
//    expert = argmax of sinkhorn(logits). Two initialisations exist:
//      zyphra   (Zyphra/BlackMamba switch_mlp.py sinkhorn): cost = exp(2*logits), d0 = 1, d1 = 1/(E*colsum(cost))
//      megatron (NVIDIA Megatron-LM megatron/core/transformer/moe/moe_utils.py sinkhorn): cost = exp(logits),
//               d0 = 1, d1 = 1
//    then, with eps = 1e-8 and tol = 1e-4:
//      while mean|d1_old - d1| > tol: d0 = (1/T) / (rowsum(d1*cost) + eps); d1 = (1/E) / (colsum(d0*cost) + eps)
//    and the result d1*cost*d0. With Zyphra's initialisation d1 is of order 1/(E*rows), so the absolute 1e-4
//    tolerance is met after one or two sweeps at B*T = 512 rows (the default run logs ~1.1 sweeps per call):
//    the plan stays close to its first column normalisation; Megatron's d1 = 1 iterates further. (Their loop has
//    no iteration limit; ours stops at kSinkhornMaxIterations and
//    counts the rows routed by an unconverged plan, which the logs report.)
//  * top1 (Zyphra/BlackMamba switch_mlp.py SwitchMLP.forward, the branch taken when routing_mode != 'sinkhorn':
//    `route = torch.softmax(route, dim=1); max_prob, max_ind = torch.max(route, dim=1)`, output * max_prob):
//    expert = first argmax of softmax(logits) in fp32, and the gate is that softmax probability (the hook sets
//    RoutingHook::softmax_gate), differentiated through the softmax over all E logits. Note that Zyphra's
//    from_pretrained never reads routing_mode, so a checkpoint trained this way still runs with the sigmoid gate
//    at inference (what bmh and Zyphra's loader do).
//  * argmax: the inference rule (argmax of the sigmoid), i.e. no hook.
// Blocks with top_k > 1 (Mixtral/Jamba) always route by their own softmax top-k, whatever `routing` says.
// The Switch load-balancing loss (RoutingHook::aux_loss_coef, core/trainable.h) is independent of the rule.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/trainable.h"

namespace bmh::train {

enum class SinkhornInit { Zyphra, Megatron };
constexpr int kSinkhornMaxIterations = 10000;

// Balanced assignment matrix [rows, E] (fp32) from router logits [rows, E]; *iterations gets the loop count.
std::vector<float> sinkhorn(const float* logits, int rows, int E, SinkhornInit init, int* iterations = nullptr);

struct RoutingStats {  // filled by the hooks as they run (per training step; reset by the trainer)
  int64_t calls = 0, unconverged_calls = 0, iterations = 0;
};

// "sinkhorn", "top1" or "argmax" (the model's own inference routing: null unless aux_loss_coef != 0).
std::unique_ptr<RoutingHook> make_routing_hook(const std::string& routing, SinkhornInit init,
                                               std::shared_ptr<RoutingStats> stats, double aux_loss_coef = 0);
SinkhornInit sinkhorn_init_from(const std::string& s);  // "zyphra" | "megatron"

}  // namespace bmh::train

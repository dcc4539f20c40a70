// Training compute per token, the x-axis of the equal-FLOPs study. From core/flops.h (one convention for every
// block type, its MACs checked against the reference):
//   forward(T)   = sum over the T positions of a sequence of the per-token forward FLOPs
//                  (2 x multiply-adds + elementwise ops; attention's score/value terms grow with the position)
//   train/token  = 3 x forward(T) / T                 (backward = 2 x forward, core/flops.h)
// Per block and token (MACs; FLOPs are twice these plus the elementwise ops core/flops.cpp lists):
//   Mamba      3*Di*d (in_proj 2*Di*d, out_proj d*Di) + Di*K (conv) + (R+2N)*Di (x_proj) + R*Di (dt_proj)
//              + 2*Di*N (scan: state update and C.h)
//   attention  4*d*H*hd (qkv, dense) + 2*H*hd*c (q.k and p.v over the c = t+1 visible keys)
//   MLP/expert 3*F*d gated or 2*F*d plain (top_k experts per token), router E*d
//   head       d*V (the embedding lookup costs nothing)
// Zyphra's published calculator (zcookbook calc/calc_mamba_flops.py compute_mamba1_flops, iter_factor 1 for the
// forward) counts a Mamba layer as Di*(11N + 4R + 1) + 6*Di*d + 2*Di*K per token: the same multiply-adds
// (its 11N = our 8N from x_proj's B, C and the scan's two MACs + 3N elementwise), differing only in the
// per-channel elementwise terms (its 1*Di; ours ~11*Di: dt bias, softplus, conv bias and SiLU, D skip, gate).
// tests/test_train_flops.cpp checks that agreement.
#pragma once
#include <cstdint>

#include "core/model_config.h"

namespace bmh::train {

double forward_flops_per_token(const ModelConfig& cfg, int64_t seq_len);
double training_flops_per_token(const ModelConfig& cfg, int64_t seq_len);
// Parameters a token uses outside the embedding and the head (the study's matching quantity).
int64_t active_non_embedding_params(const ModelConfig& cfg);
// zcookbook calc_mamba_flops.py compute_mamba1_flops(args, iter_factor=1) / tokens, for one Mamba layer.
double zyphra_mamba1_flops_per_token(const MambaSpec& m, int d_model);

}  // namespace bmh::train

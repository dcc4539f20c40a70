// Per-sequence rows of the CUDA recurrent state, for continuous batching (core/batched_generate.h): a prompt is
// prefilled alone into a one-row state and its row copied into its slot of the decoder's batch state. The layouts
// are DecodeState::allocate's (kernels/cuda_model.cpp): conv [B, max(K-1, 1), Di] and ssm [B, Di, N], fp32, so a
// sequence's row is one contiguous block.
#include <algorithm>

#include "kernels/cuda_backend.h"

namespace bmh::cuda {

void copy_mamba_state_row(const ModelConfig& cfg, const StatePtrs& from, int from_row, const StatePtrs& to, int to_row,
                          cudaStream_t s) {
  for (int i = 0; i < cfg.n_blocks(); ++i) {
    const BlockConfig& b = cfg.blocks[i];
    if (b.mixer != MixerKind::Mamba) continue;
    const size_t conv = size_t(std::max(b.mamba.d_conv - 1, 1)) * b.mamba.d_inner;
    const size_t ssm = size_t(b.mamba.d_inner) * b.mamba.d_state;
    BMH_CUDA(cudaMemcpyAsync(to.conv[i] + to_row * conv, from.conv[i] + from_row * conv, conv * 4,
                             cudaMemcpyDeviceToDevice, s));
    BMH_CUDA(cudaMemcpyAsync(to.ssm[i] + to_row * ssm, from.ssm[i] + from_row * ssm, ssm * 4,
                             cudaMemcpyDeviceToDevice, s));
  }
}

}  // namespace bmh::cuda

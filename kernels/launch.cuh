// Kernel launches that may carry programmatic dependent launch (PDL): inside a PdlScope(true) on this thread (the
// decode step's graph capture, CudaDecoder::record_step with pdl=on), launch_kernel adds
// cudaLaunchAttributeProgrammaticStreamSerialization, so the kernel may be scheduled while the previous kernel in
// the stream still runs; everywhere else (prefill, the op table) it is a plain launch, as before. A kernel launched
// this way must call pdl_wait() (common.cuh) before it reads anything an earlier kernel wrote and before its first
// write, and should call pdl_trigger() early so its own successor can be scheduled.
#pragma once
#include <cuda_runtime.h>

#include <utility>

#include "kernels/device.h"

namespace bmh::cuda {

// Thread-local, like the decoder's capture (cudaStreamCaptureModeThreadLocal).
inline bool& pdl_flag() {
  static thread_local bool on = false;
  return on;
}
inline bool pdl_wanted() { return pdl_flag(); }

// Sets the flag for its lifetime and restores the previous value.
class PdlScope {
 public:
  explicit PdlScope(bool on) : prev_(pdl_flag()) { pdl_flag() = on; }
  ~PdlScope() { pdl_flag() = prev_; }
  PdlScope(const PdlScope&) = delete;
  PdlScope& operator=(const PdlScope&) = delete;

 private:
  bool prev_;
};

// Appends the PDL attribute to attrs[n] when wanted; returns the new count (for launches with other attributes).
inline unsigned add_pdl_attr(cudaLaunchAttribute* attrs, unsigned n) {
  if (!pdl_wanted()) return n;
  attrs[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attrs[n].val.programmaticStreamSerializationAllowed = 1;
  return n + 1;
}

// kernel<<<grid, block, smem, s>>>(args...), with the PDL attribute when wanted. Throws on a launch error.
template <class... KArgs, class... Args>
void launch_kernel(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  cfg.attrs = attr;
  cfg.numAttrs = add_pdl_attr(attr, 0);
  BMH_CUDA(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

}  // namespace bmh::cuda

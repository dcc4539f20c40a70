// Per-op GPU time of one prefill (`bmh bench-gpu` prints it beside each preset's forward): CUDA events recorded on
// the model's stream between ops; the time from one mark to the next is charged to the op named by the later mark.
// Off unless a timer is attached (CudaModel::set_op_timer): a null check per op. Events between kernels add a few
// microseconds per forward, so the timed forward runs without one and the breakdown comes from an extra forward.
#pragma once
#include <cuda_runtime_api.h>

#include <string>
#include <utility>
#include <vector>

namespace bmh::cuda {

class OpTimer {
 public:
  explicit OpTimer(cudaStream_t s);
  ~OpTimer();
  OpTimer(const OpTimer&) = delete;
  OpTimer& operator=(const OpTimer&) = delete;
  // Charges the GPU time since the previous mark (or since construction) to `op`, a string literal.
  void mark(const char* op);
  // Waits for the stream; per op (in order of first mark): total ms and the number of marks.
  struct Row {
    std::string op;
    double ms = 0;
    int count = 0;
  };
  std::vector<Row> totals();

 private:
  cudaEvent_t event();
  cudaStream_t s_;
  std::vector<cudaEvent_t> pool_;  // pool_[0] is the start; pool_[i] ends the span named names_[i - 1]
  std::vector<const char*> names_;
};

}  // namespace bmh::cuda

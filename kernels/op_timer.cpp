#include "kernels/op_timer.h"

#include "kernels/device.h"

namespace bmh::cuda {

OpTimer::OpTimer(cudaStream_t s) : s_(s) { BMH_CUDA(cudaEventRecord(event(), s_)); }

OpTimer::~OpTimer() {
  for (cudaEvent_t e : pool_) cudaEventDestroy(e);
}

cudaEvent_t OpTimer::event() {
  cudaEvent_t e = nullptr;
  BMH_CUDA(cudaEventCreate(&e));
  pool_.push_back(e);
  return e;
}

void OpTimer::mark(const char* op) {
  names_.push_back(op);
  BMH_CUDA(cudaEventRecord(event(), s_));
}

std::vector<OpTimer::Row> OpTimer::totals() {
  BMH_CUDA(cudaStreamSynchronize(s_));
  std::vector<Row> rows;
  for (size_t i = 0; i < names_.size(); ++i) {
    float ms = 0;
    BMH_CUDA(cudaEventElapsedTime(&ms, pool_[i], pool_[i + 1]));
    size_t r = 0;
    while (r < rows.size() && rows[r].op != names_[i]) ++r;
    if (r == rows.size()) rows.push_back({names_[i], 0.0, 0});
    rows[r].ms += ms;
    rows[r].count += 1;
  }
  return rows;
}

}  // namespace bmh::cuda

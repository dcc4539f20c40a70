// Device basics for the CUDA backend: activation dtypes, error checks that throw bmh::Error, and an owning device
// buffer whose allocation failure names what was allocated, the bytes asked and free, and a hint.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace bmh::cuda {

// Activation / weight storage dtype of the backend (the residual stream is always fp32).
enum class Dt : uint8_t { F32, BF16, F16 };
size_t dt_size(Dt t);
const char* dt_name(Dt t);                     // "fp32", "bf16", "fp16"
Dt dt_from_string(const std::string& s);       // fp32|bf16|fp16, else bmh::Error listing them

// Throws bmh::Error "<what>: <cuda error string> (<file>:<line>)" when e != cudaSuccess.
void check(cudaError_t e, const char* what, const char* file, int line);
#define BMH_CUDA(call) ::bmh::cuda::check((call), #call, __FILE__, __LINE__)
// After a kernel launch: checks the launch error (not a sync).
#define BMH_LAUNCH(name) ::bmh::cuda::check(cudaGetLastError(), name, __FILE__, __LINE__)

// True when at least one CUDA device is usable (cudaGetDeviceCount succeeds and returns > 0).
bool device_available();

// Owning device allocation (cudaMalloc). alloc() throws bmh::Error on OOM naming `what`, the bytes asked, the
// bytes free and total on the device, and a hint.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(size_t bytes, const std::string& what) { alloc(bytes, what); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; o.n_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;

  void alloc(size_t bytes, const std::string& what);   // frees any previous allocation first
  // Keeps the allocation when it is already at least `bytes` long (workspaces that grow).
  void ensure(size_t bytes, const std::string& what);
  void release();
  void* get() const { return p_; }
  template <class T> T* as() const { return static_cast<T*>(p_); }
  size_t bytes() const { return n_; }

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};

// Copies and fills (synchronous unless a stream is given).
// Multiprocessors of the current device (read once): the kernels that size their grids to fill the GPU.
int sm_count();
void upload(void* dst, const void* src, size_t bytes, cudaStream_t s = nullptr);
void download(void* dst, const void* src, size_t bytes, cudaStream_t s = nullptr);
// Fills `n` elements of dtype t with NaN (poison for tests: an unwritten element shows up).
void fill_nan(void* p, Dt t, size_t n, cudaStream_t s = nullptr);
void fill_nan_f32(float* p, size_t n, cudaStream_t s = nullptr);

// Host conversions between fp32 and a dtype's bytes.
void f32_to_dt(const float* src, void* dst, Dt t, size_t n);
void dt_to_f32(const void* src, float* dst, Dt t, size_t n);

}  // namespace bmh::cuda

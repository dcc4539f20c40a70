#include "kernels/gemm.h"

#include "core/error.h"

namespace bmh::cuda {

static const char* blas_status(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "cuBLAS error";
  }
}

#define BMH_CUBLAS(call)                                                                   \
  do {                                                                                     \
    cublasStatus_t st_ = (call);                                                           \
    if (st_ != CUBLAS_STATUS_SUCCESS) fail("cuBLAS ", #call, ": ", blas_status(st_), " at ", __FILE__, ":", __LINE__); \
  } while (0)

static cudaDataType_t cuda_type(Dt t) {
  switch (t) {
    case Dt::F32: return CUDA_R_32F;
    case Dt::BF16: return CUDA_R_16BF;
    case Dt::F16: return CUDA_R_16F;
  }
  return CUDA_R_32F;
}

Blas::Blas(cudaStream_t stream) : stream_(stream) {
  BMH_CUBLAS(cublasCreate(&h_));
  // No TF32 or reduced-precision reductions: fp32 GEMMs are true fp32 (CUBLAS_COMPUTE_32F below).
  BMH_CUBLAS(cublasSetMathMode(h_, CUBLAS_DEFAULT_MATH));
  // A fixed workspace keeps cuBLAS from allocating during stream capture.
  workspace_.alloc(32u << 20, "cuBLAS workspace");
  BMH_CUBLAS(cublasSetWorkspace(h_, workspace_.get(), workspace_.bytes()));
  BMH_CUBLAS(cublasSetStream(h_, stream_));
}

Blas::~Blas() {
  if (h_) cublasDestroy(h_);
}

void Blas::set_stream(cudaStream_t s) {
  stream_ = s;
  BMH_CUBLAS(cublasSetStream(h_, s));
}

cublasMath_t Blas::math_mode() const {
  cublasMath_t m;
  BMH_CUBLAS(cublasGetMathMode(h_, &m));
  return m;
}

static void check_types(Dt in, Dt out, const char* what) {
  if (out != in && out != Dt::F32)
    fail(what, ": output dtype ", dt_name(out), " with ", dt_name(in), " inputs (expected the same or fp32)");
}

void linear(const Blas& b, Dt in, Dt out, int M, int N, int K, const void* x, int ldx, const void* W, int ldw,
            void* y, int ldy, float alpha, float beta) {
  check_types(in, out, "linear");
  if (M == 0 || N == 0) return;
  if (K <= 0 || ldx < K || ldw < K || ldy < N)
    fail("linear: bad shape M=", M, " N=", N, " K=", K, " ldx=", ldx, " ldw=", ldw, " ldy=", ldy);
  // Row-major y[M,N] = x[M,K] W[N,K]^T is column-major y^T[N,M] = W^T... : op(A)=W (col-major [K,N], transposed),
  // op(B) = x (col-major [K,M]).
  BMH_CUBLAS(cublasGemmEx(b.handle(), CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, W, cuda_type(in), ldw, x,
                          cuda_type(in), ldx, &beta, y, cuda_type(out), ldy, Blas::compute_type(),
                          CUBLAS_GEMM_DEFAULT));
}

void gemm_strided(const Blas& b, Dt in, Dt out, bool transa, bool transb, int m, int n, int k, float alpha,
                  const void* A, int lda, long long strideA, const void* B, int ldb, long long strideB, float beta,
                  void* C, int ldc, long long strideC, int batch) {
  check_types(in, out, "gemm_strided");
  if (m == 0 || n == 0 || batch == 0) return;
  BMH_CUBLAS(cublasGemmStridedBatchedEx(b.handle(), transa ? CUBLAS_OP_T : CUBLAS_OP_N,
                                        transb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &alpha, A, cuda_type(in), lda,
                                        strideA, B, cuda_type(in), ldb, strideB, &beta, C, cuda_type(out), ldc,
                                        strideC, batch, Blas::compute_type(), CUBLAS_GEMM_DEFAULT));
}

}  // namespace bmh::cuda

// A host tensor: dtype, shape and contiguous row-major bytes, either owned or borrowed from a mapping that
// `owner` keeps alive (safetensors are memory-mapped; nothing is copied until a backend converts it).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace bmh {

enum class DType : uint8_t { F32, F64, BF16, F16, I64, I32, I16, I8, U8, Bool };

size_t dtype_size(DType t);
const char* dtype_name(DType t);          // safetensors spelling: F32, BF16, I64, ...
bool dtype_from_name(const std::string& name, DType* out);
bool dtype_is_float(DType t);

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);    // "[2, 3]"
int64_t shape_numel(const Shape& s);

class Tensor {
 public:
  Tensor() = default;
  // A new zero-filled tensor that owns its bytes.
  static Tensor zeros(DType dtype, Shape shape);
  // Borrowed bytes; `owner` keeps them alive (a mapping, a zip entry buffer).
  static Tensor borrow(DType dtype, Shape shape, const void* data, std::shared_ptr<const void> owner);
  static Tensor from_f32(const std::vector<float>& v, Shape shape);
  static Tensor from_i64(const std::vector<int64_t>& v, Shape shape);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_.at(i < 0 ? shape_.size() + i : i); }
  int rank() const { return int(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  bool defined() const { return data_ != nullptr || numel() == 0; }

  const void* raw() const { return data_; }
  // Writable only for owned tensors (zeros/from_*); throws for borrowed ones.
  void* raw_mut();
  template <class T> const T* data() const { return static_cast<const T*>(data_); }
  template <class T> T* data_mut() { return static_cast<T*>(raw_mut()); }

  // Element conversions from any float dtype (and ints for to_i64).
  std::vector<float> to_f32() const;
  std::vector<double> to_f64() const;
  std::vector<int64_t> to_i64() const;

  Tensor reshaped(Shape shape) const;   // same bytes, new shape of equal numel
  std::string describe() const;         // "BF16 [512, 64]"

 private:
  DType dtype_ = DType::F32;
  Shape shape_;
  const void* data_ = nullptr;
  std::shared_ptr<const void> owner_;
  bool owned_ = false;
};

// Named tensors, ordered by name (checkpoints, fixtures, forward outputs).
using TensorMap = std::map<std::string, Tensor>;

}  // namespace bmh

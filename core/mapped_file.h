// A read-only memory mapping of a whole file. Tensors read from safetensors borrow from it, holding the
// shared_ptr as their owner, so the mapping lives exactly as long as some tensor (or the reader) uses it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace bmh {

class MappedFile {
 public:
  // Maps `path` read-only (MAP_PRIVATE). Throws bmh::Error naming the path and the OS error.
  static std::shared_ptr<const MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }  // nullptr for an empty file
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace bmh

// safetensors reader (memory-mapped, validated) and writer (atomic).
// Format and validation follow huggingface/safetensors safetensors/src/tensor.rs (read_metadata, validate,
// prepare): 8-byte little-endian header length N (at most 100,000,000), N bytes of JSON, then the data section.
// Tensors sorted by data_offsets must tile the data section exactly: each begins where the previous ended,
// end - begin == numel * dtype size, and the last end is the end of the file. The writer sorts tensors by
// descending dtype alignment, then by name, and pads the header with spaces to a multiple of 8 bytes.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/json_bounded.h"
#include "core/mapped_file.h"

namespace bmh {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100000000;  // MAX_HEADER_SIZE in safetensors/src/tensor.rs

// safetensors dtype names that exist in the format but that this harness does not compute with.
const char* const kKnownUnsupported[] = {"F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2",
                                         "U16",     "U32",     "U64",     "C64"};

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

uint64_t json_u64(const nlohmann::json& v, const std::string& path, const std::string& name, const char* field) {
  if (!v.is_number_unsigned())  // nlohmann parses every non-negative integer literal as unsigned
    fail(path, ": tensor '", name, "': ", field, " must hold non-negative integers, got ", json_brief(v));
  return v.get<uint64_t>();
}

Entry parse_entry(const std::string& path, const std::string& name, const nlohmann::json& info) {
  if (!info.is_object()) fail(path, ": tensor '", name, "': header entry is not an object: ", json_brief(info));
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!info.contains(field)) fail(path, ": tensor '", name, "': header entry lacks \"", field, "\"");
  Entry e;
  e.name = name;
  const auto& dt = info["dtype"];
  if (!dt.is_string()) fail(path, ": tensor '", name, "': dtype must be a string, got ", json_brief(dt));
  const std::string dname = dt.get<std::string>();
  if (!dtype_from_name(dname, &e.dtype)) {
    bool known = std::any_of(std::begin(kKnownUnsupported), std::end(kKnownUnsupported),
                             [&](const char* k) { return dname == k; });
    fail(path, ": tensor '", name, "': ", known ? "unsupported" : "unknown", " dtype ", dname,
         " (supported: F32 F64 BF16 F16 I64 I32 I16 I8 U8 BOOL)");
  }
  const auto& sh = info["shape"];
  if (!sh.is_array()) fail(path, ": tensor '", name, "': shape must be an array, got ", json_brief(sh));
  for (const auto& d : sh) {
    uint64_t v = json_u64(d, path, name, "shape");
    if (v > uint64_t(INT64_MAX)) fail(path, ": tensor '", name, "': dimension ", v, " is too large");
    e.shape.push_back(int64_t(v));
  }
  const auto& off = info["data_offsets"];
  if (!off.is_array() || off.size() != 2)
    fail(path, ": tensor '", name, "': data_offsets must be [begin, end], got ", json_brief(off));
  e.begin = json_u64(off[0], path, name, "data_offsets");
  e.end = json_u64(off[1], path, name, "data_offsets");
  return e;
}

// numel * element size, or fail on overflow (ValidationOverflow in the reference).
uint64_t entry_nbytes(const std::string& path, const Entry& e) {
  uint64_t n = dtype_size(e.dtype);
  for (int64_t d : e.shape)
    if (__builtin_mul_overflow(n, uint64_t(d), &n))
      fail(path, ": tensor '", e.name, "': shape ", shape_str(e.shape), " overflows its byte size");
  return n;
}

}  // namespace

Checkpoint read_safetensors(const std::string& path) {
  auto file = MappedFile::open(path);
  return parse_safetensors(file->data(), file->size(), file, path);
}

Checkpoint parse_safetensors(const uint8_t* base, uint64_t size, const std::shared_ptr<const void>& owner,
                             const std::string& path) {
  if (size < 8) fail(path, ": file is ", size, " bytes, too short for the 8-byte safetensors header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | base[i];
  if (n > kMaxHeaderBytes)
    fail(path, ": safetensors header length ", n, " exceeds the limit of ", kMaxHeaderBytes, " bytes");
  if (n > size - 8)
    fail(path, ": safetensors header length ", n, " exceeds the ", size - 8,
         " bytes after the length field (file is ", size, " bytes; truncated?)");

  // Depth-bounded: a header nested 10^6 deep would otherwise overflow the stack in a later recursive walk.
  nlohmann::json header = parse_json_bounded(
      std::string_view(reinterpret_cast<const char*>(base + 8), size_t(n)), path + ": safetensors header (" +
      std::to_string(n) + " bytes)");
  if (!header.is_object()) fail(path, ": safetensors header is not a JSON object");

  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;  // free-form strings; not needed to read tensors
    entries.push_back(parse_entry(path, it.key(), it.value()));
  }

  const uint64_t data_size = size - 8 - n;
  // Bounds first (the likeliest damage is truncation), then the reference's tiling rule.
  for (const auto& e : entries) {
    if (e.end < e.begin || e.end > data_size)
      fail(path, ": tensor '", e.name, "' data_offsets [", e.begin, ", ", e.end, "] lie outside the data section of ",
           data_size, " bytes", e.end > data_size ? " (file truncated?)" : "");
    uint64_t nbytes = entry_nbytes(path, e);
    if (e.end - e.begin != nbytes)
      fail(path, ": tensor '", e.name, "' is ", dtype_name(e.dtype), " ", shape_str(e.shape), " = ", nbytes,
           " bytes but its data_offsets [", e.begin, ", ", e.end, "] span ", e.end - e.begin, " bytes");
  }
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t expect = 0;
  for (const auto& e : entries) {
    if (e.begin != expect)
      fail(path, ": tensor '", e.name, "' data_offsets [", e.begin, ", ", e.end, "] should begin at byte ", expect,
           e.begin < expect ? " (overlaps the previous tensor)" : " (leaves a gap)");
    expect = e.end;
  }
  if (expect != data_size)
    fail(path, ": tensors cover ", expect, " bytes of a ", data_size, "-byte data section (trailing bytes)");

  Checkpoint ck;
  const uint8_t* data = base + 8 + n;
  for (const auto& e : entries) {
    const uint8_t* p = data + e.begin;
    Tensor t;
    if (reinterpret_cast<uintptr_t>(p) % dtype_size(e.dtype) == 0) {
      t = Tensor::borrow(e.dtype, e.shape, p, owner);
    } else {  // a header length that is not a multiple of 8 misaligns the data: copy rather than alias
      t = Tensor::zeros(e.dtype, e.shape);
      if (t.nbytes()) std::memcpy(t.raw_mut(), p, t.nbytes());
    }
    ck.tensors.emplace(e.name, std::move(t));
    ck.file_of.emplace(e.name, path);
  }
  return ck;
}

namespace {

// Rank in the reference's Dtype enum (declared in increasing alignment order); the writer sorts by it descending.
int dtype_rank(DType t) {
  switch (t) {
    case DType::Bool: return 0;
    case DType::U8: return 1;
    case DType::I8: return 2;
    case DType::I16: return 5;
    case DType::F16: return 7;
    case DType::BF16: return 8;
    case DType::I32: return 9;
    case DType::F32: return 11;
    case DType::F64: return 12;
    case DType::I64: return 13;
  }
  return 0;
}

void write_all(int fd, const void* buf, size_t n, const std::string& tmp) {
  auto p = static_cast<const uint8_t*>(buf);
  while (n > 0) {
    ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t(1) << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("cannot write ", tmp, ": ", std::strerror(errno));
    }
    p += w;
    n -= size_t(w);
  }
}

}  // namespace

void write_safetensors(const std::string& path, const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<const std::string*, const Tensor*>> order;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail(path, ": '__metadata__' is reserved and cannot name a tensor");
    if (!t.defined()) fail(path, ": tensor '", name, "' ", t.describe(), " has no data");
    order.emplace_back(&name, &t);
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    int ra = dtype_rank(a.second->dtype()), rb = dtype_rank(b.second->dtype());
    return ra != rb ? ra > rb : *a.first < *b.first;
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = std::move(m);
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : order) {
    nlohmann::ordered_json info = nlohmann::ordered_json::object();
    info["dtype"] = dtype_name(t->dtype());
    info["shape"] = t->shape();
    info["data_offsets"] = {offset, offset + t->nbytes()};
    offset += t->nbytes();
    header[*name] = std::move(info);
  }
  std::string hbytes;
  try {
    hbytes = header.dump();
  } catch (const nlohmann::json::exception& ex) {
    fail(path, ": cannot encode the safetensors header (tensor names must be UTF-8): ", ex.what());
  }
  hbytes.append((8 - hbytes.size() % 8) % 8, ' ');
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(hbytes.size()) >> (8 * i));

  // Temp file in the destination directory so that rename() is atomic; fsync before rename so a crash
  // leaves either the old file or the complete new one.
  std::string tmp = path + ".tmp.XXXXXX";
  int fd = mkstemp(tmp.data());
  if (fd < 0) fail("cannot create a temporary file next to ", path, ": ", std::strerror(errno));
  try {
    fchmod(fd, 0644);
    write_all(fd, len, 8, tmp);
    write_all(fd, hbytes.data(), hbytes.size(), tmp);
    for (const auto& [name, t] : order) write_all(fd, t->raw(), t->nbytes(), tmp);
    if (fsync(fd) != 0) fail("cannot fsync ", tmp, ": ", std::strerror(errno));
    if (::close(fd) != 0) {
      fd = -1;
      fail("cannot close ", tmp, ": ", std::strerror(errno));
    }
    fd = -1;
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      fail("cannot rename ", tmp, " to ", path, ": ", std::strerror(errno));
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/') + 1);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {  // make the rename itself durable; best effort (some filesystems refuse fsync on dirs)
    fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace bmh

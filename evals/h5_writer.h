// A small HDF5 (C API) helper for self-describing result files, shared by every eval and the runner.
//
//   bmh::h5::File f("results/x/results.h5");           // writes results.h5.tmp.<pid> ...
//   auto g = f.root().group("blackmamba").group("routing");
//   g.attr("model", "tiny-blackmamba");
//   g.write("tokens_per_expert", counts, {L, E}, {"tokens routed to each expert", "tokens", {"layer", "expert"}});
//   f.commit();                                          // ... closes, fsyncs and renames it over results.h5
//
// Every dataset carries the attributes "description", "units" (when given) and "dims" (one name per axis), so
// h5py users can read a file without this code: f["blackmamba/routing/tokens_per_expert"].attrs["dims"].
// A File destroyed without commit() removes its temp file: a crash never leaves a half-written results.h5.
// Strings are variable-length UTF-8. Errors throw bmh::Error naming the file and the object.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "core/tensor.h"

namespace bmh::h5 {

using AttrValue = std::variant<int64_t, double, std::string, std::vector<int64_t>, std::vector<double>,
                               std::vector<std::string>>;

struct DatasetInfo {
  std::string description;
  std::string units;               // "", "tokens", "ms", "FLOPs", "bytes", "fraction", ...
  std::vector<std::string> dims;   // axis names, e.g. {"layer", "expert"}; empty = unnamed
};

// An open HDF5 object id, closed when the last copy goes away.
class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*close)(hid_t));
  hid_t id() const { return h_ ? *h_ : -1; }
 private:
  std::shared_ptr<hid_t> h_;
};

class Group {
 public:
  Group(Handle h, std::string file, std::string path) : h_(std::move(h)), file_(std::move(file)), path_(std::move(path)) {}
  const std::string& path() const { return path_; }
  Group group(const std::string& name);                          // creates the child group or opens it
  bool has(const std::string& name) const;
  // Attributes (replacing an existing one of the same name): integers are stored as int64, reals as double.
  void attr(const std::string& name, const AttrValue& v) { set_attr(name, v); }
  void attr(const std::string& name, const char* v) { set_attr(name, std::string(v)); }
  void attr(const std::string& name, int v) { set_attr(name, int64_t(v)); }
  void attr(const std::string& name, int64_t v) { set_attr(name, v); }
  void attr(const std::string& name, double v) { set_attr(name, v); }
  // Datasets are row-major with the given shape (empty shape = scalar); they replace an existing one.
  void write(const std::string& name, const std::vector<double>& data, const Shape& shape, const DatasetInfo& info = {});
  void write(const std::string& name, const std::vector<float>& data, const Shape& shape, const DatasetInfo& info = {});
  void write(const std::string& name, const std::vector<int64_t>& data, const Shape& shape, const DatasetInfo& info = {});
  void write(const std::string& name, const std::vector<std::string>& data, const Shape& shape, const DatasetInfo& info = {});
  // 1-D convenience: shape = {data.size()}.
  template <class T> void write(const std::string& name, const std::vector<T>& data, const DatasetInfo& info = {}) {
    write(name, data, Shape{int64_t(data.size())}, info);
  }
  // Copies the object at src_path of another HDF5 file (a group with everything below it) to this/dst_name.
  void copy_from(const std::string& src_file, const std::string& src_path, const std::string& dst_name);
  hid_t id() const { return h_.id(); }

 private:
  void set_attr(const std::string& name, const AttrValue& v);
  void write_raw(const std::string& name, hid_t type, const void* data, size_t n, const Shape& shape,
                 const DatasetInfo& info);
  Handle h_;
  std::string file_, path_;
};

class File {
 public:
  explicit File(const std::string& path);  // creates path + ".tmp.<pid>"
  ~File();                                 // without commit(): closes and removes the temp file
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  Group root();
  void commit();                           // close, fsync, rename over path
  const std::string& path() const { return path_; }

 private:
  std::string path_, tmp_;
  Handle file_;
  bool committed_ = false;
};

// Reading back (tests, the runner's merge step). Numeric datasets of any integer or float type.
bool exists(const std::string& file, const std::string& object_path);
std::vector<double> read_doubles(const std::string& file, const std::string& dataset, Shape* shape = nullptr);
std::vector<std::string> read_strings(const std::string& file, const std::string& dataset);
std::string read_string_attr(const std::string& file, const std::string& object_path, const std::string& attr);
double read_double_attr(const std::string& file, const std::string& object_path, const std::string& attr);

}  // namespace bmh::h5

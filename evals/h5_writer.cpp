// HDF5 result files: see evals/h5_writer.h.
#include "evals/h5_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <type_traits>

#include "core/error.h"

namespace bmh::h5 {

namespace {

// HDF5 prints its own error stack by default; we report errors once, with context, as bmh::Error.
void quiet() {
  static const bool done = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

hid_t check(hid_t id, const std::string& what) {
  if (id < 0) fail("hdf5: ", what);
  return id;
}

Handle string_type() {
  hid_t t = check(H5Tcopy(H5T_C_S1), "H5Tcopy");
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return Handle(t, H5Tclose);
}

Handle dataspace(const Shape& shape, const std::string& what) {
  if (shape.empty()) return Handle(check(H5Screate(H5S_SCALAR), what), H5Sclose);
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  return Handle(check(H5Screate_simple(int(dims.size()), dims.data(), nullptr), what), H5Sclose);
}

Handle open_file_ro(const std::string& file) {
  quiet();
  std::error_code ec;  // a name the OS refuses (too long, ...) is a missing file, not a filesystem_error
  if (!std::filesystem::exists(file, ec)) fail("hdf5: ", file, ": no such file");
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) fail("hdf5: ", file, ": not an HDF5 file or unreadable");
  return Handle(f, H5Fclose);
}

}  // namespace

Handle::Handle(hid_t id, herr_t (*close)(hid_t))
    : h_(new hid_t(id), [close](hid_t* p) {
        if (*p >= 0) close(*p);
        delete p;
      }) {}

Group Group::group(const std::string& name) {
  std::string p = path_ == "/" ? "/" + name : path_ + "/" + name;
  hid_t g = has(name) ? H5Gopen2(id(), name.c_str(), H5P_DEFAULT)
                      : H5Gcreate2(id(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  check(g, file_ + ": cannot create or open group " + p);
  return Group(Handle(g, H5Gclose), file_, p);
}

bool Group::has(const std::string& name) const {
  if (name.empty() || name.find('/') != std::string::npos) fail("hdf5: ", file_, ": bad object name '", name, "' in ", path_);
  return H5Lexists(id(), name.c_str(), H5P_DEFAULT) > 0;
}

void Group::set_attr(const std::string& name, const AttrValue& v) {
  const std::string what = file_ + ": attribute " + name + " of " + path_;
  if (H5Aexists(id(), name.c_str()) > 0) H5Adelete(id(), name.c_str());
  auto put = [&](hid_t type, const Shape& shape, const void* data) {
    Handle space = dataspace(shape, what);
    Handle a(check(H5Acreate2(id(), name.c_str(), type, space.id(), H5P_DEFAULT, H5P_DEFAULT), what), H5Aclose);
    if (H5Awrite(a.id(), type, data) < 0) fail("hdf5: cannot write ", what);
  };
  std::visit(
      [&](const auto& x) {
        using X = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<X, int64_t>) {
          put(H5T_NATIVE_INT64, {}, &x);
        } else if constexpr (std::is_same_v<X, double>) {
          put(H5T_NATIVE_DOUBLE, {}, &x);
        } else if constexpr (std::is_same_v<X, std::string>) {
          const char* p = x.c_str();
          put(string_type().id(), {}, &p);
        } else if constexpr (std::is_same_v<X, std::vector<int64_t>>) {
          put(H5T_NATIVE_INT64, {int64_t(x.size())}, x.data());
        } else if constexpr (std::is_same_v<X, std::vector<double>>) {
          put(H5T_NATIVE_DOUBLE, {int64_t(x.size())}, x.data());
        } else {
          std::vector<const char*> ptrs;
          for (const auto& s : x) ptrs.push_back(s.c_str());
          put(string_type().id(), {int64_t(x.size())}, ptrs.data());
        }
      },
      v);
}

void Group::write_raw(const std::string& name, hid_t type, const void* data, size_t n, const Shape& shape,
                      const DatasetInfo& info) {
  const std::string what = file_ + ": dataset " + (path_ == "/" ? "" : path_) + "/" + name;
  if (size_t(shape_numel(shape)) != n)
    fail("hdf5: ", what, ": ", n, " values do not fill shape ", shape_str(shape));
  if (!info.dims.empty() && info.dims.size() != shape.size())
    fail("hdf5: ", what, ": ", info.dims.size(), " axis names for shape ", shape_str(shape));
  if (has(name) && H5Ldelete(id(), name.c_str(), H5P_DEFAULT) < 0) fail("hdf5: cannot replace ", what);
  Handle space = dataspace(shape, what);
  Handle ds(check(H5Dcreate2(id(), name.c_str(), type, space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                  "cannot create " + what),
            H5Dclose);
  if (n > 0 && H5Dwrite(ds.id(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) fail("hdf5: cannot write ", what);
  Group as(ds, file_, (path_ == "/" ? "" : path_) + "/" + name);  // attributes through the same code path
  if (!info.description.empty()) as.attr("description", info.description);
  if (!info.units.empty()) as.attr("units", info.units);
  if (!info.dims.empty()) as.attr("dims", info.dims);
}

void Group::write(const std::string& name, const std::vector<double>& d, const Shape& s, const DatasetInfo& i) {
  write_raw(name, H5T_NATIVE_DOUBLE, d.data(), d.size(), s, i);
}
void Group::write(const std::string& name, const std::vector<float>& d, const Shape& s, const DatasetInfo& i) {
  write_raw(name, H5T_NATIVE_FLOAT, d.data(), d.size(), s, i);
}
void Group::write(const std::string& name, const std::vector<int64_t>& d, const Shape& s, const DatasetInfo& i) {
  write_raw(name, H5T_NATIVE_INT64, d.data(), d.size(), s, i);
}
void Group::write(const std::string& name, const std::vector<std::string>& d, const Shape& s, const DatasetInfo& i) {
  std::vector<const char*> ptrs;
  for (const auto& x : d) ptrs.push_back(x.c_str());
  Handle t = string_type();
  write_raw(name, t.id(), ptrs.data(), ptrs.size(), s, i);
}

void Group::copy_from(const std::string& src_file, const std::string& src_path, const std::string& dst_name) {
  Handle src = open_file_ro(src_file);
  if (H5Lexists(src.id(), src_path.c_str(), H5P_DEFAULT) <= 0 && src_path != "/")
    fail("hdf5: ", src_file, ": no object ", src_path, " to copy");
  if (has(dst_name)) H5Ldelete(id(), dst_name.c_str(), H5P_DEFAULT);
  if (H5Ocopy(src.id(), src_path.c_str(), id(), dst_name.c_str(), H5P_DEFAULT, H5P_DEFAULT) < 0)
    fail("hdf5: cannot copy ", src_file, ":", src_path, " to ", file_, ":", path_, "/", dst_name);
}

File::File(const std::string& path) : path_(path), tmp_(path + ".tmp." + std::to_string(getpid())) {
  quiet();
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);  // closing the file closes any group still held
  hid_t f = H5Fcreate(tmp_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (f < 0) fail("hdf5: cannot create ", tmp_);
  file_ = Handle(f, H5Fclose);
}

File::~File() {
  if (committed_) return;
  file_ = Handle();
  std::remove(tmp_.c_str());
}

Group File::root() {
  if (committed_) fail("hdf5: ", path_, " is already committed");
  hid_t g = check(H5Gopen2(file_.id(), "/", H5P_DEFAULT), path_ + ": cannot open /");
  return Group(Handle(g, H5Gclose), path_, "/");
}

void File::commit() {
  if (committed_) return;
  if (H5Fflush(file_.id(), H5F_SCOPE_GLOBAL) < 0) fail("hdf5: cannot flush ", tmp_);
  file_ = Handle();  // H5Fclose
  int fd = ::open(tmp_.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  std::error_code ec;
  std::filesystem::rename(tmp_, path_, ec);
  if (ec) fail("hdf5: cannot rename ", tmp_, " to ", path_, ": ", ec.message());
  committed_ = true;
}

bool exists(const std::string& file, const std::string& object_path) {
  Handle f = open_file_ro(file);
  if (object_path == "/") return true;
  // H5Lexists needs every intermediate link to exist: walk the path.
  std::string p;
  size_t start = object_path[0] == '/' ? 1 : 0;
  while (start <= object_path.size()) {
    size_t end = object_path.find('/', start);
    if (end == std::string::npos) end = object_path.size();
    p += "/" + object_path.substr(start, end - start);
    if (H5Lexists(f.id(), p.c_str(), H5P_DEFAULT) <= 0) return false;
    start = end + 1;
  }
  return true;
}

std::vector<double> read_doubles(const std::string& file, const std::string& dataset, Shape* shape) {
  if (!exists(file, dataset)) fail("hdf5: ", file, ": no dataset ", dataset);
  Handle f = open_file_ro(file);
  Handle ds(check(H5Dopen2(f.id(), dataset.c_str(), H5P_DEFAULT), file + ": cannot open " + dataset), H5Dclose);
  Handle space(H5Dget_space(ds.id()), H5Sclose);
  int rank = H5Sget_simple_extent_ndims(space.id());
  std::vector<hsize_t> dims(std::max(rank, 0));
  H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr);
  Shape s(dims.begin(), dims.end());
  if (shape) *shape = s;
  std::vector<double> out(size_t(shape_numel(s)));
  if (!out.empty() && H5Dread(ds.id(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
    fail("hdf5: ", file, ": cannot read ", dataset, " as numbers");
  return out;
}

std::vector<std::string> read_strings(const std::string& file, const std::string& dataset) {
  if (!exists(file, dataset)) fail("hdf5: ", file, ": no dataset ", dataset);
  Handle f = open_file_ro(file);
  Handle ds(check(H5Dopen2(f.id(), dataset.c_str(), H5P_DEFAULT), file + ": cannot open " + dataset), H5Dclose);
  Handle space(H5Dget_space(ds.id()), H5Sclose);
  hssize_t n = H5Sget_simple_extent_npoints(space.id());
  std::vector<char*> ptrs(size_t(std::max<hssize_t>(n, 0)), nullptr);
  Handle t = string_type();
  if (n > 0 && H5Dread(ds.id(), t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0)
    fail("hdf5: ", file, ": cannot read ", dataset, " as strings");
  std::vector<std::string> out;
  for (char* p : ptrs) out.emplace_back(p ? p : "");
  if (n > 0) H5Dvlen_reclaim(t.id(), space.id(), H5P_DEFAULT, ptrs.data());
  return out;
}

namespace {
Handle open_attr(const Handle& f, const std::string& file, const std::string& obj, const std::string& attr) {
  if (H5Aexists_by_name(f.id(), obj.c_str(), attr.c_str(), H5P_DEFAULT) <= 0)
    fail("hdf5: ", file, ": ", obj, " has no attribute ", attr);
  return Handle(check(H5Aopen_by_name(f.id(), obj.c_str(), attr.c_str(), H5P_DEFAULT, H5P_DEFAULT),
                      file + ": cannot open attribute " + attr),
                H5Aclose);
}
}  // namespace

std::string read_string_attr(const std::string& file, const std::string& obj, const std::string& attr) {
  if (!exists(file, obj)) fail("hdf5: ", file, ": no object ", obj);
  Handle f = open_file_ro(file);
  Handle a = open_attr(f, file, obj, attr);
  Handle t = string_type();
  char* p = nullptr;
  if (H5Aread(a.id(), t.id(), &p) < 0) fail("hdf5: ", file, ": attribute ", attr, " of ", obj, " is not a string");
  std::string out = p ? p : "";
  H5free_memory(p);
  return out;
}

double read_double_attr(const std::string& file, const std::string& obj, const std::string& attr) {
  if (!exists(file, obj)) fail("hdf5: ", file, ": no object ", obj);
  Handle f = open_file_ro(file);
  Handle a = open_attr(f, file, obj, attr);
  double v = 0;
  if (H5Aread(a.id(), H5T_NATIVE_DOUBLE, &v) < 0) fail("hdf5: ", file, ": attribute ", attr, " of ", obj, " is not a number");
  return v;
}

}  // namespace bmh::h5

// Tools for the bad-input catalogue (tests/test_bad_input_catalogue.cpp): running the bmh binary with a
// memory bound, writing torch pickles and zip archives byte by byte, and poking JSON files.
#pragma once
#include <sys/resource.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>
#include <zip.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define BMH_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BMH_TEST_ASAN 1
#endif
#endif

namespace bmh::test {

namespace fs = std::filesystem;

struct CliResult {
  int exit_code = 0;          // 128 + signal when killed
  std::string err;            // all of stderr
  long peak_rss_mb = 0;       // the child's peak resident set (getrusage)
};

// Virtual-memory bound for the child (ulimit -v). ASan reserves terabytes of address space for its shadow, so
// sanitized builds bound only the peak resident set, which the tests check after the run.
constexpr long kAddressSpaceBytes = 3L << 30;

inline CliResult run_bmh(const std::vector<std::string>& args, const fs::path& err_file) {
  // BMH_CATALOGUE_BINARY runs the catalogue against another build (e.g. the commit before the fixes).
  const char* other = std::getenv("BMH_CATALOGUE_BINARY");
  std::vector<std::string> argv_s{other && *other ? other : BMH_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  pid_t pid = fork();
  if (pid == 0) {
#ifndef BMH_TEST_ASAN
    rlimit lim{rlim_t(kAddressSpaceBytes), rlim_t(kAddressSpaceBytes)};
    setrlimit(RLIMIT_AS, &lim);
#endif
    int devnull = open("/dev/null", O_WRONLY);
    int efd = open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(devnull, 1);
    dup2(efd, 2);
    std::vector<char*> argv;
    for (auto& s : argv_s) argv.push_back(s.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  rusage ru{};
  wait4(pid, &status, 0, &ru);
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.peak_rss_mb = ru.ru_maxrss / 1024;
  std::ifstream in(err_file);
  r.err.assign(std::istreambuf_iterator<char>(in), {});
  return r;
}

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
inline void write_file(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// "[[[...]]]" nested n deep.
inline std::string nested_json(size_t n) { return std::string(n, '[') + std::string(n, ']'); }

// Protocol-2 pickle opcodes, enough to write torch state dicts (CPython Lib/pickletools.py names).
struct PickleWriter {
  std::string b = "\x80\x02";
  static std::string le32(uint32_t v) { return std::string{char(v), char(v >> 8), char(v >> 16), char(v >> 24)}; }
  PickleWriter& op(char c) { b += c; return *this; }
  PickleWriter& mark() { return op('('); }
  PickleWriter& str(const std::string& s) { b += 'X' + le32(uint32_t(s.size())) + s; return *this; }
  PickleWriter& integer(int64_t v) {  // LONG1 with 8 bytes
    b += "\x8a\x08";
    for (int k = 0; k < 8; ++k) b += char(uint64_t(v) >> (8 * k));
    return *this;
  }
  PickleWriter& global(const std::string& module, const std::string& name) { b += 'c' + module + '\n' + name + '\n'; return *this; }
  PickleWriter& ints_tuple(const std::vector<int64_t>& v) {
    mark();
    for (auto x : v) integer(x);
    return op('t');
  }
  // A _rebuild_tensor_v2 call on storage `key` (FloatStorage of `numel`).
  PickleWriter& tensor(const std::string& key, int64_t numel, int64_t offset, const std::vector<int64_t>& size,
                       const std::vector<int64_t>& stride) {
    global("torch._utils", "_rebuild_tensor_v2").mark();
    mark().str("storage").global("torch", "FloatStorage").str(key).str("cpu").integer(numel).op('t').op('Q');
    integer(offset).ints_tuple(size).ints_tuple(stride).op('\x89');
    global("collections", "OrderedDict").op(')').op('R');
    return op('t').op('R');
  }
  std::string done() { return b + '.'; }
};

// A torch.save-style zip: entries written in order, stored or deflated.
inline void write_zip(const fs::path& path, const std::vector<std::pair<std::string, std::string>>& entries,
                      bool deflate = false) {
  fs::remove(path);
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  ASSERT_NE(z, nullptr);
  for (const auto& [name, data] : entries) {
    zip_source_t* s = zip_source_buffer(z, data.data(), data.size(), 0);
    zip_int64_t idx = zip_file_add(z, name.c_str(), s, ZIP_FL_OVERWRITE);
    ASSERT_GE(idx, 0);
    zip_set_file_compression(z, zip_uint64_t(idx), deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
  }
  ASSERT_EQ(zip_close(z), 0);
}

// Every entry of a zip archive, in order.
inline std::vector<std::pair<std::string, std::string>> read_zip(const fs::path& path) {
  std::vector<std::pair<std::string, std::string>> out;
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_RDONLY, &err);
  if (!z) return out;
  for (zip_int64_t i = 0; i < zip_get_num_entries(z, 0); ++i) {
    zip_stat_t st;
    zip_stat_index(z, zip_uint64_t(i), 0, &st);
    std::string data(size_t(st.size), '\0');
    zip_file_t* f = zip_fopen_index(z, zip_uint64_t(i), 0);
    zip_fread(f, data.data(), data.size());
    zip_fclose(f);
    out.emplace_back(st.name, std::move(data));
  }
  zip_discard(z);
  return out;
}

// Rewrites the uncompressed size that the local and central headers of `name` declare (a zip that lies).
inline void patch_zip_declared_size(const fs::path& path, const std::string& name, uint32_t size) {
  std::string z = read_file(path);
  auto u16 = [&](size_t at) { return size_t(uint8_t(z[at])) | size_t(uint8_t(z[at + 1])) << 8; };
  auto put32 = [&](size_t at) { for (int k = 0; k < 4; ++k) z[at + k] = char(size >> (8 * k)); };
  for (size_t i = 0; i + 46 < z.size(); ++i) {
    if (z.compare(i, 4, "PK\x03\x04") == 0 && z.compare(i + 30, name.size(), name) == 0 && u16(i + 26) == name.size())
      put32(i + 22);
    if (z.compare(i, 4, "PK\x01\x02") == 0 && z.compare(i + 46, name.size(), name) == 0 && u16(i + 28) == name.size())
      put32(i + 24);
  }
  write_file(path, z);
}

}  // namespace bmh::test

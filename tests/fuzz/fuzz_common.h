// Shared by the libFuzzer targets: inputs become files (the readers take paths), and the outcome rule.
// Rule: a reader either returns or throws bmh::Error (a named one-line error). Anything else — another
// exception type, a crash, a sanitizer report, a leak, an allocation over -rss_limit_mb — is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"

namespace bmh::fuzz {

// A per-process scratch directory (tmpfs where there is one), removed at exit.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    std::string base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path().string();
    std::string d = base + "/bmh-fuzz-" + std::to_string(::getpid());
    std::filesystem::create_directories(d);
    // The handler runs after `dir` is destroyed (it was registered first), so it keeps its own copy.
    static char* copy = strdup(d.c_str());
    std::atexit([] { std::error_code ec; std::filesystem::remove_all(copy, ec); std::free(copy); });
    return d;
  }();
  return dir;
}

// Writes data to <scratch>/<name> and returns the path.
inline std::string write_scratch(const std::string& name, const uint8_t* data, size_t size) {
  std::string path = scratch_dir() + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), std::streamsize(size));
  return path;
}

// Runs fn; bmh::Error is the expected outcome of bad input, anything else aborts (a finding).
template <class Fn>
void expect_named_errors(Fn fn) {
  try {
    fn();
  } catch (const bmh::Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "finding: exception other than bmh::Error: %s\n", e.what());
    std::abort();
  }
}

}  // namespace bmh::fuzz

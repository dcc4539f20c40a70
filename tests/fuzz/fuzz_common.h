// Shared by the libFuzzer targets: the input as bytes or as a file, and the outcome rule. Readers are fuzzed through
// the bytes entry point their path version calls (parse_safetensors, parse_torch_zip, parse_config_json,
// Tokenizer::from_json): no file system round trip per execution, and ASan sees reads past the input's end (the
// input is an exact-size heap block; a mapping would hide them up to the page end). Readers that resolve other
// files next to theirs (experiments, tasks) still get a file.
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
#include <memory>
#include <string>
#include <string_view>

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

// The input as text, and as the owner tensors that borrow from it hold (libFuzzer keeps it alive for the call).
inline std::string_view text(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}
inline std::shared_ptr<const void> borrowed(const uint8_t* data) {
  return std::shared_ptr<const void>(data, [](const void*) {});
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

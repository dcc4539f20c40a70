// Reading JSON that came from the internet (configs, safetensors headers, index files, experiment files):
// parsing with a nesting bound, so that no later recursive walk (copy, compare, dump) can exhaust the stack,
// and a one-line rendering of any value for error messages that never recurses and never throws.
#pragma once
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace bmh {

// No file this harness reads nests deeper than a handful of levels (tokenizer.json: 4); 64 is generous.
constexpr int kMaxJsonDepth = 64;

// Parses `text`; errors name `where`, the byte offset and, for nesting, the bound. Throws bmh::Error.
nlohmann::json parse_json_bounded(std::string_view text, const std::string& where, int max_depth = kMaxJsonDepth);
// Reads the whole file and parses it as above; errors name the file.
nlohmann::json read_json_file_bounded(const std::string& path, int max_depth = kMaxJsonDepth);

// A scalar as JSON (strings cut at 60 bytes, invalid UTF-8 replaced); an array or object as "[...] (N items)" /
// "{...} (N keys)". At most ~80 characters.
std::string json_brief(const nlohmann::json& v);

// Whether v is an integer that T holds exactly (nlohmann's get<int> would silently wrap 2^32 + 64 to 64).
template <class T>
bool json_int_fits(const nlohmann::json& v) {
  static_assert(std::is_integral_v<T>);
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= uint64_t(std::numeric_limits<T>::max());
  if (v.is_number_integer()) {
    const int64_t s = v.get<int64_t>();
    if constexpr (std::is_signed_v<T>) return s >= int64_t(std::numeric_limits<T>::min()) &&
                                              s <= int64_t(std::numeric_limits<T>::max());
    else return s >= 0;
  }
  return false;
}

}  // namespace bmh

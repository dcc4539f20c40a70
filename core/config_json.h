// Helpers for reading a family's config.json: typed required/optional fields with errors naming the file and
// key, bounded integer and real readers, and the check that every key is either honoured or known to be inert
// for that family.
//
// Bounded readers (use these for every size a parser reads; other family parsers too):
//   int n = c.get_int("num_hidden_layers", 1, kMaxConfigLayers);          // required, in [lo, hi]
//   int e = c.get_int_or("state_size", 16, 1, kMaxConfigState);           // optional with a default
//   double eps = c.get_real_or("layer_norm_eps", 1e-5, kMinEps, kMaxEps);  // finite, in [lo, hi]
// Errors read "<file>: field 'num_hidden_layers' = 2147483647 is outside [1, 1024]".
#pragma once
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "core/error.h"
#include "core/json_bounded.h"

namespace bmh {

// Upper bounds on what a config may declare, checked before anything is sized from it. Each is well above
// every published model (widths <= 25,600, <= 256 layers, vocabularies <= 256k, contexts <= 1M).
constexpr int64_t kMaxConfigLayers = 1024;
constexpr int64_t kMaxConfigWidth = 131072;      // hidden size, head count, head dim
constexpr int64_t kMaxConfigFfn = 1 << 20;       // MLP / expert hidden width
constexpr int64_t kMaxConfigVocab = 1 << 22;
constexpr int64_t kMaxConfigExperts = 1024;
constexpr int64_t kMaxConfigState = 1024;        // SSM state size N
constexpr int64_t kMaxConfigConv = 64;           // causal conv width K
constexpr int64_t kMaxConfigExpand = 64;         // Mamba expansion factor
constexpr int64_t kMaxConfigSeqLen = 1 << 24;    // max_position_embeddings / max_sequence_length
constexpr double kMinEps = 1e-12, kMaxEps = 0.1; // norm epsilon: positive, and small enough to be an epsilon

struct ConfigJson {
  std::string path;
  nlohmann::json j;

  bool has(const std::string& key) const { return j.contains(key) && !j.at(key).is_null(); }

  template <class T>
  T get(const std::string& key) const {
    if (!has(key)) fail(path, ": required field '", key, "' is missing");
    return as<T>(key, j.at(key));
  }
  template <class T>
  T get_or(const std::string& key, const T& fallback) const {
    return has(key) ? as<T>(key, j.at(key)) : fallback;
  }

  int get_int(const std::string& key, int64_t lo, int64_t hi) const {
    return int(in_range(key, get<int64_t>(key), lo, hi));
  }
  int get_int_or(const std::string& key, int64_t fallback, int64_t lo, int64_t hi) const {
    return int(in_range(key, get_or<int64_t>(key, fallback), lo, hi));
  }
  double get_real(const std::string& key, double lo, double hi) const { return in_range(key, get<double>(key), lo, hi); }
  double get_real_or(const std::string& key, double fallback, double lo, double hi) const {
    return in_range(key, get_or<double>(key, fallback), lo, hi);
  }

  template <class T>
  T as(const std::string& key, const nlohmann::json& v) const {
    const char* why = nullptr;
    if constexpr (std::is_same_v<T, bool>) {
      if (!v.is_boolean()) why = "not a boolean";
    } else if constexpr (std::is_integral_v<T>) {
      if (!v.is_number_integer()) why = "not an integer";
      else if (!json_int_fits<T>(v)) why = "out of range";
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!v.is_number()) why = "not a number";
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!v.is_string()) why = "not a string";
    }
    if (why) fail(path, ": field '", key, "' = ", json_brief(v), " has the wrong type (", why, ")");
    try {
      return v.get<T>();
    } catch (const std::exception& e) {
      fail(path, ": field '", key, "' = ", json_brief(v), " has the wrong type (", e.what(), ")");
    }
  }

  // Every top-level key must be honoured or inert; anything else is an error naming it, since the official
  // loader would act on a key we would silently ignore.
  void check_keys(const std::set<std::string>& honoured, const std::set<std::string>& inert,
                  const std::string& family) const {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!honoured.count(it.key()) && !inert.count(it.key()))
        fail(path, ": key '", it.key(), "' is not supported for ", family,
             " configs (neither honoured nor known to be inert)");
    }
  }

 private:
  // "!(v >= lo && v <= hi)" also refuses NaN.
  int64_t in_range(const std::string& key, int64_t v, int64_t lo, int64_t hi) const {
    if (!(v >= lo && v <= hi)) fail(path, ": field '", key, "' = ", v, " is outside [", lo, ", ", hi, "]");
    return v;
  }
  double in_range(const std::string& key, double v, double lo, double hi) const {
    if (!(v >= lo && v <= hi)) fail(path, ": field '", key, "' = ", v, " is outside [", lo, ", ", hi, "]");
    return v;
  }
};

ConfigJson read_config_json(const std::string& path);
// What read_config_json does with the file's text (path names it in errors).
ConfigJson parse_config_json(std::string_view text, const std::string& path);

}  // namespace bmh

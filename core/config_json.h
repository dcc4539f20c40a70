// Helpers for reading a family's config.json: typed required/optional fields with errors naming the file and
// key, and the check that every key is either honoured or known to be inert for that family.
#pragma once
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "core/error.h"

namespace bmh {

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

  template <class T>
  T as(const std::string& key, const nlohmann::json& v) const {
    try {
      if constexpr (std::is_same_v<T, bool>) {
        if (!v.is_boolean()) throw std::runtime_error("not a boolean");
      } else if constexpr (std::is_integral_v<T>) {
        if (!v.is_number_integer()) throw std::runtime_error("not an integer");
      } else if constexpr (std::is_floating_point_v<T>) {
        if (!v.is_number()) throw std::runtime_error("not a number");
      }
      return v.get<T>();
    } catch (const std::exception& e) {
      fail(path, ": field '", key, "' = ", v.dump(), " has the wrong type (", e.what(), ")");
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
};

ConfigJson read_config_json(const std::string& path);

}  // namespace bmh

#include "evals/task_jsonl.h"

#include "core/error.h"
#include "core/json_bounded.h"
#include "evals/task_python_text.h"

namespace bmh::eval {

std::string where(const JsonLine& l) { return l.file + ":" + std::to_string(l.line) + ": "; }

std::vector<std::string> read_lines(const std::string& path) {
  std::string text = read_binary_file(path);
  utf8_decode(text, path);
  std::vector<std::string> lines = py_split(text, "\n");
  if (!lines.empty() && lines.back().empty()) lines.pop_back();  // the final newline ends the last line
  for (size_t i = 0; i < lines.size(); ++i)
    for (char c : lines[i])
      if (c == '\r' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1e))
        fail(path, ":", i + 1, ": unexpected line-break character (code ", int(c), ")");
  return lines;
}

std::vector<JsonLine> read_jsonl(const std::string& path) {
  std::vector<std::string> lines = read_lines(path);
  std::vector<JsonLine> out;
  out.reserve(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    JsonLine l{path, int64_t(i + 1), {}};
    // Depth-bounded (core/json_bounded.h): no later recursive walk of a 10^6-deep line.
    l.value = parse_json_bounded(lines[i], where(l) + "malformed JSON");
    if (!l.value.is_object()) fail(where(l), "expected a JSON object, got ", l.value.type_name());
    out.push_back(std::move(l));
  }
  if (out.empty()) fail(path, ": no records");
  return out;
}

const nlohmann::json& json_field(const JsonLine& l, const nlohmann::json& obj, const std::string& key,
                                 const std::string& path) {
  if (!obj.is_object()) fail(where(l), "field \"", path, "\": its parent is not an object");
  auto it = obj.find(key);
  if (it == obj.end()) fail(where(l), "field \"", path, "\": missing");
  return *it;
}

std::string json_string(const JsonLine& l, const nlohmann::json& obj, const std::string& key,
                        const std::string& path) {
  const nlohmann::json& v = json_field(l, obj, key, path);
  if (!v.is_string()) fail(where(l), "field \"", path, "\": expected a string, got ", v.type_name());
  return v.get<std::string>();
}

const nlohmann::json& json_array(const JsonLine& l, const nlohmann::json& obj, const std::string& key,
                                 const std::string& path) {
  const nlohmann::json& v = json_field(l, obj, key, path);
  if (!v.is_array()) fail(where(l), "field \"", path, "\": expected an array, got ", v.type_name());
  return v;
}

}  // namespace bmh::eval

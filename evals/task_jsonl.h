// Reading the tasks' original line-oriented files with errors that name the file, the line and the field:
// "data/tasks/piqa/valid.jsonl:12: field \"goal\": missing".
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace bmh::eval {

struct JsonLine {
  std::string file;
  int64_t line = 0;          // 1-based
  nlohmann::json value;
};

// One JSON object per line; blank lines are rejected like any malformed line (Python's json.loads("") fails).
// A final newline is optional.
std::vector<JsonLine> read_jsonl(const std::string& path);
// The lines of a text file (str.splitlines() of a file without \r, \v, \f, \x1c-\x1e, \x85, U+2028/9).
std::vector<std::string> read_lines(const std::string& path);

// Field accessors that fail naming file:line and the field path ("question.choices[2].text").
const nlohmann::json& json_field(const JsonLine& l, const nlohmann::json& obj, const std::string& key,
                                 const std::string& path);
std::string json_string(const JsonLine& l, const nlohmann::json& obj, const std::string& key,
                        const std::string& path);
const nlohmann::json& json_array(const JsonLine& l, const nlohmann::json& obj, const std::string& key,
                                 const std::string& path);
// "file:line: " prefix for other errors.
std::string where(const JsonLine& l);

}  // namespace bmh::eval

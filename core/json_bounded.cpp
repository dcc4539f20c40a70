#include "core/json_bounded.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace bmh {

namespace {
struct TooDeep {};
}  // namespace

nlohmann::json parse_json_bounded(std::string_view text, const std::string& where, int max_depth) {
  // nlohmann's parser is iterative; the callback sees each container's depth as it opens.
  auto bound = [max_depth](int depth, nlohmann::json::parse_event_t ev, nlohmann::json&) {
    if ((ev == nlohmann::json::parse_event_t::object_start || ev == nlohmann::json::parse_event_t::array_start) &&
        depth >= max_depth)
      throw TooDeep{};
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), bound);
  } catch (const TooDeep&) {
    fail(where, ": JSON nested deeper than ", max_depth, " levels");
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": not valid JSON: ", e.what());
  }
}

nlohmann::json read_json_file_bounded(const std::string& path, int max_depth) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open (", std::strerror(errno), ")");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_json_bounded(ss.str(), path, max_depth);
}

std::string json_brief(const nlohmann::json& v) {
  if (v.is_array()) return "[...] (" + std::to_string(v.size()) + " items)";
  if (v.is_object()) return "{...} (" + std::to_string(v.size()) + " keys)";
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    nlohmann::json cut = s.size() > 60 ? s.substr(0, 60) : s;
    std::string out = cut.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return s.size() > 60 ? out.substr(0, out.size() - 1) + "...\"" : out;
  }
  if (v.is_binary()) return "<binary>";
  return v.dump();  // null, bool, number: short and never recursive
}

}  // namespace bmh

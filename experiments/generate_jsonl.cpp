#include "experiments/generate_jsonl.h"

#include <fstream>

#include "core/error.h"
#include "core/json_bounded.h"

namespace bmh {

std::vector<GenerateRequest> read_prompts_jsonl(const std::string& path, int default_max_new, int vocab,
                                                const std::function<const Tokenizer&()>& tokenizer) {
  constexpr int64_t kMaxNewBound = int64_t(1) << 20;
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open ", path);
  std::vector<GenerateRequest> out;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    const std::string where = path + ":" + std::to_string(lineno);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json j = parse_json_bounded(line, where, 4);
    if (!j.is_object()) fail(where, ": expected a JSON object {\"text\": ...} or {\"ids\": [...]}, got ", json_brief(j));
    for (const auto& [key, value] : j.items())
      if (key != "text" && key != "ids" && key != "max_new_tokens")
        fail(where, ": unknown key \"", key, "\" (allowed: text, ids, max_new_tokens)");
    if (j.contains("text") == j.contains("ids")) fail(where, ": give exactly one of \"text\" and \"ids\"");
    GenerateRequest r;
    r.max_new = default_max_new;
    if (j.contains("max_new_tokens")) {
      const nlohmann::json& m = j["max_new_tokens"];
      if (!json_int_fits<int>(m) || m.get<int64_t>() < 0 || m.get<int64_t>() > kMaxNewBound)
        fail(where, ": max_new_tokens ", json_brief(m), " must be an integer in [0, ", kMaxNewBound, "]");
      r.max_new = m.get<int>();
    }
    if (j.contains("ids")) {
      const nlohmann::json& ids = j["ids"];
      if (!ids.is_array()) fail(where, ": \"ids\" must be an array of token ids, got ", json_brief(ids));
      for (size_t i = 0; i < ids.size(); ++i) {
        if (!json_int_fits<int64_t>(ids[i]) || ids[i].get<int64_t>() < 0 || ids[i].get<int64_t>() >= vocab)
          fail(where, ": ids[", i, "] = ", json_brief(ids[i]), " is not a token id in the vocabulary [0, ", vocab, ")");
        r.prompt.push_back(ids[i].get<int64_t>());
      }
    } else {
      const nlohmann::json& t = j["text"];
      if (!t.is_string()) fail(where, ": \"text\" must be a string, got ", json_brief(t));
      std::vector<int32_t> ids;
      try {
        ids = tokenizer().encode(t.get_ref<const std::string&>());
      } catch (const Error& e) {
        fail(where, ": ", e.what());
      }
      for (size_t i = 0; i < ids.size(); ++i) {
        if (ids[i] >= vocab)
          fail(where, ": the text's token ", i, " (id ", ids[i], ") is outside the model's vocabulary [0, ", vocab, ")");
        r.prompt.push_back(ids[i]);
      }
    }
    if (r.prompt.empty()) fail(where, ": the prompt has no tokens (generation needs at least one)");
    out.push_back(std::move(r));
  }
  if (in.bad()) fail("reading ", path, " failed");
  if (out.empty()) fail(path, ": no prompts (every line is blank)");
  return out;
}

std::string format_results_jsonl(const std::vector<GenerateRequest>& requests,
                                 const std::vector<GenerateResult>& results, const Tokenizer* tokenizer) {
  if (requests.size() != results.size())
    fail("format_results_jsonl: ", requests.size(), " requests, ", results.size(), " results");
  std::string text;
  for (size_t r = 0; r < results.size(); ++r) {
    nlohmann::json decoded = nullptr;
    if (tokenizer) {
      std::vector<int32_t> ids;
      bool fits = true;
      for (int64_t id : results[r].generated) {
        fits = fits && id < tokenizer->vocab_size();
        ids.push_back(int32_t(id));
      }
      if (fits) decoded = tokenizer->decode(ids, true);
    }
    nlohmann::json line = {{"index", r},
                           {"prompt_ids", requests[r].prompt},
                           {"generated_ids", results[r].generated},
                           {"text", decoded},
                           {"finish_reason", results[r].finish_reason}};
    text += line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    text += '\n';
  }
  return text;
}

}  // namespace bmh

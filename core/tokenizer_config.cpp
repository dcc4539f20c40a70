// tokenizer.json parsing with explicit refusals (see core/tokenizer_config.h). Field meanings follow HF tokenizers
// 0.23.2: tokenizers/src/tokenizer/serialization.rs, models/bpe/serialization.rs, tokenizer/added_vocabulary.rs.
#include "core/tokenizer_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/json_bounded.h"

namespace bmh {

namespace {

using nlohmann::json;

std::string type_of(const json& j) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) return "<no type>";
  return j["type"].get<std::string>();
}

bool flag(const json& obj, const char* key, bool fallback) {
  if (!obj.contains(key) || obj[key].is_null()) return fallback;
  if (!obj[key].is_boolean()) fail("expected a boolean at key ", key);
  return obj[key].get<bool>();
}

void check_byte_level(const std::string& path, const json& j, const char* where) {
  if (flag(j, "add_prefix_space", true))
    fail("tokenizer ", path, ": ", where, ".add_prefix_space=true is not implemented");
  if (!flag(j, "use_regex", true)) fail("tokenizer ", path, ": ", where, ".use_regex=false is not implemented");
}

}  // namespace

TokenizerSpec read_tokenizer_json(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("tokenizer ", path, ": cannot open the file");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_tokenizer_json(ss.str(), path);
}

TokenizerSpec parse_tokenizer_json(std::string_view text, const std::string& path) {
  const json root = parse_json_bounded(text, "tokenizer " + path);
  TokenizerSpec spec;
  spec.path = path;
  try {
    if (!root.is_object()) fail("the top level is not an object");
    for (const char* key : {"truncation", "padding"})
      if (root.contains(key) && !root[key].is_null()) fail("key ", key, " is set; truncation/padding are not implemented");

    // normalizer
    const json& norm = root.value("normalizer", json());
    if (!norm.is_null()) {
      if (type_of(norm) != "NFC") fail("normalizer type ", type_of(norm), " is not implemented (only NFC)");
      spec.nfc = true;
    }
    // pre_tokenizer
    const json& pre = root.value("pre_tokenizer", json());
    if (type_of(pre) != "ByteLevel") fail("pre_tokenizer type ", type_of(pre), " is not implemented (only ByteLevel)");
    check_byte_level(path, pre, "pre_tokenizer");
    // post_processor: ByteLevel only trims offsets, which we do not report; ids are unchanged.
    const json& post = root.value("post_processor", json());
    if (!post.is_null() && type_of(post) != "ByteLevel")
      fail("post_processor type ", type_of(post), " is not implemented (only ByteLevel or null)");
    // decoder
    const json& dec = root.value("decoder", json());
    if (type_of(dec) != "ByteLevel") fail("decoder type ", type_of(dec), " is not implemented (only ByteLevel)");

    // model
    if (!root.contains("model") || !root["model"].is_object()) fail("key model is missing");
    const json& model = root["model"];
    if (type_of(model) != "BPE") fail("model type ", type_of(model), " is not implemented (only BPE)");
    if (model.contains("dropout") && !model["dropout"].is_null() && model["dropout"].get<double>() != 0.0)
      fail("model.dropout is set; BPE dropout is not implemented");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (model.contains(key) && !model[key].is_null() && !model[key].get<std::string>().empty())
        fail("model.", key, " is set; it is not implemented");
    if (flag(model, "byte_fallback", false)) fail("model.byte_fallback=true is not implemented");
    if (flag(model, "ignore_merges", false)) fail("model.ignore_merges=true is not implemented");
    // model.unk_token is never used: every byte-level symbol must be in the vocabulary (checked by the BPE model).

    if (!model.contains("vocab") || !model["vocab"].is_object()) fail("key model.vocab is missing or not an object");
    spec.vocab.reserve(model["vocab"].size());
    for (const auto& [tok, id] : model["vocab"].items()) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
        fail("model.vocab[\"", tok, "\"] is not a non-negative 32-bit id");
      spec.vocab.emplace(tok, id.get<int32_t>());
    }
    if (!model.contains("merges") || !model["merges"].is_array()) fail("key model.merges is missing or not an array");
    size_t rank = 0;
    for (const json& m : model["merges"]) {
      if (m.is_string()) {  // legacy "a b" (models/bpe/model.rs convert_merges_to_hashmap); "#version" lines skipped
        const std::string s = m.get<std::string>();
        if (s.rfind("#version", 0) == 0) continue;
        const size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          fail("model.merges[", rank, "] \"", s, "\" is not two tokens separated by one space");
        spec.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        spec.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        fail("model.merges[", rank, "] is neither \"a b\" nor [\"a\", \"b\"]");
      }
      ++rank;
    }

    // added_tokens
    if (root.contains("added_tokens") && !root["added_tokens"].is_null()) {
      size_t k = 0;
      for (const json& t : root["added_tokens"]) {
        if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
            !t["content"].is_string())
          fail("added_tokens[", k, "] lacks an integer id or a string content");
        // get<int32_t> would wrap 2^32 + 50276 to 50276.
        if (!json_int_fits<int32_t>(t["id"]) || t["id"].get<int64_t>() < 0)
          fail("added_tokens[", k, "] id ", json_brief(t["id"]), " is not a non-negative 32-bit id");
        AddedToken a;
        a.id = t["id"].get<int32_t>();
        a.content = t["content"].get<std::string>();
        a.special = flag(t, "special", false);
        a.normalized = flag(t, "normalized", !a.special);  // AddedToken::from: normalized = !special
        for (const char* key : {"single_word", "lstrip", "rstrip"})
          if (flag(t, key, false))
            fail("added_tokens[", k, "] (\"", a.content, "\") has ", key, "=true, which is not implemented");
        if (a.id < 0) fail("added_tokens[", k, "] has a negative id");
        spec.added_tokens.push_back(std::move(a));
        ++k;
      }
    }
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.rfind("tokenizer ", 0) == 0) throw;
    fail("tokenizer ", path, ": ", what);
  } catch (const json::exception& e) {
    fail("tokenizer ", path, ": unexpected JSON value: ", e.what());
  }
  return spec;
}

}  // namespace bmh

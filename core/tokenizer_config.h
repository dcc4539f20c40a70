// Reading a HF tokenizer.json into what core/tokenizer.cpp implements, refusing everything else by name.
// Supported (the GPT-NeoX-20B file): normalizer NFC or null; pre_tokenizer ByteLevel (add_prefix_space false,
// use_regex true); post_processor ByteLevel or null (it only trims offsets); decoder ByteLevel; model BPE without
// dropout, subword prefix/suffix, byte fallback or ignore_merges; added tokens without single_word/lstrip/rstrip;
// no truncation or padding.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/tokenizer_added.h"

namespace bmh {

struct TokenizerSpec {
  std::string path;
  bool nfc = false;
  std::unordered_map<std::string, int32_t> vocab;             // model.vocab
  std::vector<std::pair<std::string, std::string>> merges;    // model.merges in rank order
  std::vector<AddedToken> added_tokens;                       // in file order
};

TokenizerSpec read_tokenizer_json(const std::string& path);
// What read_tokenizer_json does with the file's text (path names it in errors and in the spec).
TokenizerSpec parse_tokenizer_json(std::string_view text, const std::string& path);

}  // namespace bmh

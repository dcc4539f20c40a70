// The ByteLevel pre-tokenizer's split: GPT-2's regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (tokenizers/src/pre_tokenizers/byte_level.rs, RE; SplitDelimiterBehavior::Isolated, so unmatched gaps are pieces
// too). Run with PCRE2 (JIT), with \p{L}, \p{N} and \s spelled out as the Unicode 16.0.0 classes that HF's
// Oniguruma uses (core/tokenizer_unicode.h): \s is White_Space, so U+0085, U+00A0, U+1680, U+2000..U+200A,
// U+2028, U+2029, U+202F, U+205F and U+3000 are spaces, and U+180E and U+200B are not.
#pragma once
#include <string_view>
#include <vector>

namespace bmh {

class ByteLevelSplitter {
 public:
  ByteLevelSplitter();
  ~ByteLevelSplitter();
  ByteLevelSplitter(const ByteLevelSplitter&) = delete;
  ByteLevelSplitter& operator=(const ByteLevelSplitter&) = delete;

  // Appends the pieces of `text` (valid UTF-8) in order; their concatenation is `text`. Thread-safe.
  void split(std::string_view text, std::vector<std::string_view>& out) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8
};

}  // namespace bmh

// Unicode facts and UTF-8 helpers for the tokenizer.
//
// Why pinned Unicode versions: HF tokenizers 0.23.2 evaluates the ByteLevel split regex with the Oniguruma bundled
// in its `onig` crate, whose `\p{L}`, `\p{N}` and `\s` are Unicode 16.0.0 (L, N and White_Space; checked on every
// scalar value by scripts/tokenizer_fuzz.sh --classes). Its NFC normalizer is the crate
// unicode-normalization-alignments 0.1.12, whose tables are Unicode 9.0.0 (its src/tables.rs, UNICODE_VERSION).
// The system's PCRE2 and utf8proc carry other versions, so the classes come from generated tables
// (core/tokenizer_unicode_tables.cpp, made by scripts/tokenizer_fuzz/gen_unicode_tables.mjs).
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace bmh::unicode {

struct CodepointRange {
  char32_t first, last;  // inclusive
};

std::span<const CodepointRange> letter_ranges();             // General_Category L, Unicode 16.0.0
std::span<const CodepointRange> number_ranges();             // General_Category N, Unicode 16.0.0
std::span<const CodepointRange> white_space_ranges();        // White_Space, Unicode 16.0.0
std::span<const CodepointRange> assigned_unicode9_ranges();  // assigned in Unicode <= 9.0.0

bool in_ranges(std::span<const CodepointRange> ranges, char32_t c);

// Byte offset of the first byte that does not start a well-formed UTF-8 sequence (Unicode Table 3-7), or npos.
size_t invalid_utf8_offset(std::string_view s);

// Decodes the scalar value starting at s[i] of well-formed UTF-8 and advances i.
char32_t next_codepoint(std::string_view s, size_t& i);
void append_utf8(std::string& out, char32_t c);

// Rust's String::from_utf8_lossy: each maximal ill-formed subpart becomes one U+FFFD.
std::string utf8_lossy(std::string_view bytes);

}  // namespace bmh::unicode

// Byte-level alphabet (see core/tokenizer_byte_level.h).
#include "core/tokenizer_byte_level.h"

#include "core/tokenizer_unicode.h"

namespace bmh::byte_level {

namespace {

struct Alphabet {
  std::array<char32_t, 256> to_char{};
  std::array<std::string, 256> to_utf8;
  std::array<int, 512> to_byte{};  // every alphabet code point is < 0x100 + 68

  Alphabet() {
    to_byte.fill(-1);
    auto printable = [](int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
    int n = 0;
    for (int b = 0; b < 256; ++b) to_char[b] = printable(b) ? char32_t(b) : char32_t(0x100 + n++);
    for (int b = 0; b < 256; ++b) {
      unicode::append_utf8(to_utf8[b], to_char[b]);
      to_byte[to_char[b]] = b;
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet a;
  return a;
}

}  // namespace

char32_t byte_to_char(unsigned char b) { return alphabet().to_char[b]; }
const std::string& byte_to_utf8(unsigned char b) { return alphabet().to_utf8[b]; }
int char_to_byte(char32_t c) { return c < 512 ? alphabet().to_byte[c] : -1; }

// tokenizers/src/pre_tokenizers/byte_level.rs, `impl Decoder for ByteLevel`: a token maps through CHAR_BYTES only
// when all of its chars are in it; otherwise its UTF-8 bytes are kept as they are.
std::string token_bytes(std::string_view token) {
  std::string out;
  size_t i = 0;
  while (i < token.size()) {
    const int b = char_to_byte(unicode::next_codepoint(token, i));
    if (b < 0) return std::string(token);
    out.push_back(char(b));
  }
  return out;
}

}  // namespace bmh::byte_level

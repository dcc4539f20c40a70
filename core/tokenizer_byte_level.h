// GPT-2's byte-level alphabet: every byte is shown as a printable code point so that BPE works on text
// (tokenizers/src/pre_tokenizers/byte_level.rs, bytes_char; after openai/gpt-2 src/encoder.py bytes_to_unicode).
#pragma once
#include <array>
#include <string>
#include <string_view>

namespace bmh::byte_level {

// The code point byte b is shown as: printable Latin-1 bytes (! .. ~, ¡ .. ¬, ® .. ÿ) stand for themselves, the
// other 68 bytes get U+0100 + n in byte order (space -> U+0120 'Ġ', newline -> U+010A 'Ċ').
char32_t byte_to_char(unsigned char b);
// The UTF-8 of byte_to_char(b).
const std::string& byte_to_utf8(unsigned char b);
// Inverse of byte_to_char; -1 for a code point outside the alphabet.
int char_to_byte(char32_t c);

// The ByteLevel decoder's bytes for one token: the alphabet's bytes when every code point of `token` is in the
// alphabet, else the token's own UTF-8 bytes (as HF does for added tokens such as runs of spaces).
std::string token_bytes(std::string_view token);

}  // namespace bmh::byte_level

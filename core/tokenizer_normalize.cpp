// NFC with Unicode 9.0.0 semantics through utf8proc (see core/tokenizer_normalize.h).
#include "core/tokenizer_normalize.h"

#include <utf8proc.h>

#include <cstdlib>

#include "core/error.h"
#include "core/tokenizer_unicode.h"

namespace bmh {

namespace {

bool all_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

void append_nfc(std::string_view piece, std::string& out) {
  if (piece.empty()) return;
  if (all_ascii(piece)) {  // ASCII is NFC, and no ASCII character composes with another
    out.append(piece);
    return;
  }
  utf8proc_uint8_t* buf = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(piece.data()), utf8proc_ssize_t(piece.size()), &buf,
                   utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) fail("tokenizer: NFC (utf8proc) failed on a ", piece.size(), "-byte piece: ", utf8proc_errmsg(n));
  out.append(reinterpret_cast<const char*>(buf), size_t(n));
  std::free(buf);
}

// NFC of valid UTF-8 with Unicode 9.0.0 semantics: cut at code points Unicode 9.0.0 had not assigned.
void append_nfc_unicode9(std::string_view in, std::string& out) {
  const auto assigned9 = unicode::assigned_unicode9_ranges();
  size_t piece_begin = 0, i = 0;
  while (i < in.size()) {
    const size_t at = i;
    const char32_t c = unicode::next_codepoint(in, i);
    if (c < 0x80 || unicode::in_ranges(assigned9, c)) continue;
    append_nfc(in.substr(piece_begin, at - piece_begin), out);
    out.append(in.substr(at, i - at));  // unassigned in Unicode 9.0.0: passes through unchanged
    piece_begin = i;
  }
  append_nfc(in.substr(piece_begin), out);
}

size_t find_byte(std::string_view s, size_t from, bool ascii) {
  for (size_t i = from; i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) < 0x80) == ascii) return i;
  return s.size();
}

}  // namespace

// Only the stretches around non-ASCII text go through utf8proc. The text may be cut before any ASCII character:
// it has combining class 0 and NFC_Quick_Check=Yes, so nothing after it reorders or composes with anything before
// it. A stretch runs from the ASCII character before a non-ASCII run (a base that may compose with a following
// mark, e.g. "e" U+0301) to the next ASCII character.
void nfc_as_hf(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  size_t copied = 0;
  for (;;) {
    const size_t first_non_ascii = find_byte(in, copied, false);
    if (first_non_ascii == in.size()) break;
    const size_t begin = first_non_ascii > copied ? first_non_ascii - 1 : copied;
    const size_t end = find_byte(in, first_non_ascii, true);
    out.append(in.substr(copied, begin - copied));
    append_nfc_unicode9(in.substr(begin, end - begin), out);
    copied = end;
  }
  out.append(in.substr(copied));
}

}  // namespace bmh

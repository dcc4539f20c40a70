// The NFC normalizer exactly as HF tokenizers 0.23.2 applies it (tokenizers/src/normalizers/unicode.rs -> the crate
// unicode-normalization-alignments 0.1.12, whose tables are Unicode 9.0.0).
//
// How: utf8proc (Unicode 15) does the normalization, but the text is first cut at every code point that Unicode
// 9.0.0 had not assigned. In Unicode 9.0.0 terms such a code point is a starter with no decomposition that composes
// with nothing, so NFC never looks across it: NFC9(A x B) = NFC9(A) x NFC9(B). Within the pieces every code point was
// assigned by 9.0.0, and Unicode's stability policy keeps their decompositions, combining classes and compositions
// unchanged since, so utf8proc's NFC of a piece equals the 9.0.0 NFC. (Without the cut, a mark added after 9.0, e.g.
// U+1AC1 with class 230, would be reordered or would let a following mark compose where HF does neither.)
// Only the stretches around non-ASCII characters reach utf8proc; ASCII is NFC and starts a normalization boundary.
#pragma once
#include <string>
#include <string_view>

namespace bmh {

// Writes NFC(in) to `out` (replacing its contents). `in` must be valid UTF-8.
void nfc_as_hf(std::string_view in, std::string& out);

}  // namespace bmh

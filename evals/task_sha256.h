// SHA-256 (FIPS 180-4) of bytes or of a file, as lowercase hex: data files are named in results by their hash,
// so a user's copy of a dataset can be recognised (data/PROVENANCE.md lists the expected values).
#pragma once
#include <string>
#include <string_view>

namespace bmh::eval {

std::string sha256_hex(std::string_view bytes);
std::string sha256_file(const std::string& path);

}  // namespace bmh::eval

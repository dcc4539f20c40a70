#include "train/data.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/error.h"
#include "core/tokenizer.h"

namespace bmh::train {

namespace {

namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open text file ", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<uint16_t> read_bin(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open token shard ", path);
  const auto size = fs::file_size(path);
  if (size % 2) fail(path, ": ", size, " bytes is not a whole number of uint16 tokens");
  std::vector<uint16_t> v(size / 2);
  in.read(reinterpret_cast<char*>(v.data()), std::streamsize(size));
  if (!in) fail(path, ": short read");
  return v;  // little-endian hosts only, as np.uint16 .tofile writes native order
}

uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

Tensor windows(const std::vector<uint16_t>& tok, const std::vector<int64_t>& offsets, int T) {
  std::vector<int64_t> ids;
  ids.reserve(offsets.size() * size_t(T));
  for (int64_t o : offsets)
    for (int t = 0; t < T; ++t) ids.push_back(tok[size_t(o + t)]);
  return Tensor::from_i64(ids, {int64_t(offsets.size()), T});
}

std::vector<double> unigram(const std::vector<uint16_t>& tok, int V, double add) {
  std::vector<double> p(size_t(V), add);
  for (uint16_t t : tok) p[t] += 1;
  double s = 0;
  for (double x : p) s += x;
  for (double& x : p) x /= s;
  return p;
}

}  // namespace

TokenData TokenData::load(const DataSpec& spec) {
  TokenData d;
  if (spec.text_files.empty() == spec.bin_dir.empty()) fail("data: give text files or a token-shard directory");
  if (!spec.bin_dir.empty()) {
    d.train_ = read_bin(spec.bin_dir + "/train.bin");
    d.val_ = read_bin(spec.bin_dir + "/val.bin");
    d.what_ = spec.bin_dir + " (uint16 shards)";
  } else {
    if (!(spec.val_fraction > 0 && spec.val_fraction < 1))
      fail("data: val_fraction must be in (0, 1), got ", spec.val_fraction);
    std::unique_ptr<Tokenizer> tok;
    if (spec.tokenizer == "gpt-neox") tok = std::make_unique<Tokenizer>(Tokenizer::load(default_tokenizer_path()));
    else if (spec.tokenizer != "bytes") fail("data: unknown tokenizer '", spec.tokenizer, "' (bytes, gpt-neox)");
    d.vocab_ = tok ? tok->vocab_size() : 256;
    if (d.vocab_ > 65536) fail("data: vocabulary of ", d.vocab_, " does not fit uint16 tokens");
    for (const auto& f : spec.text_files) {
      const std::string text = read_file(f);
      std::vector<uint16_t> ids;
      if (tok) {
        for (int32_t id : tok->encode(text)) ids.push_back(uint16_t(id));
      } else {
        for (unsigned char c : text) ids.push_back(c);
      }
      const size_t n_val = size_t(double(ids.size()) * spec.val_fraction);
      d.train_.insert(d.train_.end(), ids.begin(), ids.end() - std::ptrdiff_t(n_val));
      d.val_.insert(d.val_.end(), ids.end() - std::ptrdiff_t(n_val), ids.end());
      d.what_ += (d.what_.empty() ? "" : ", ") + fs::path(f).filename().string();
    }
    d.what_ += " (" + spec.tokenizer + ")";
  }
  for (uint16_t t : d.train_) d.max_id_ = std::max<int>(d.max_id_, t);
  for (uint16_t t : d.val_) d.max_id_ = std::max<int>(d.max_id_, t);
  if (d.vocab_ == 0) d.vocab_ = d.max_id_ + 1;
  if (d.train_.empty() || d.val_.empty()) fail("data: ", d.what_, " gives an empty train or held-out split");
  return d;
}

std::string TokenData::describe() const {
  return what_ + ": " + std::to_string(train_.size()) + " train, " + std::to_string(val_.size()) + " held-out tokens";
}

Tensor TokenData::train_batch(uint64_t seed, int64_t step, int micro, int B, int T) const {
  if (int64_t(train_.size()) < T) fail("data: train split of ", train_.size(), " tokens is shorter than ", T);
  const uint64_t span = train_.size() - size_t(T) + 1;
  std::vector<int64_t> off;
  for (int b = 0; b < B; ++b)
    off.push_back(int64_t(mix(mix(mix(seed ^ 0x5bd1e995u) + uint64_t(step)) + uint64_t(micro) * 1000003u + uint64_t(b)) %
                          span));
  return windows(train_, off, T);
}

std::vector<Tensor> TokenData::val_batches(int n_batches, int B, int T) const {
  if (int64_t(val_.size()) < T) fail("data: held-out split of ", val_.size(), " tokens is shorter than ", T);
  const int64_t n = int64_t(n_batches) * B, last = int64_t(val_.size()) - T;
  std::vector<Tensor> out;
  for (int k = 0; k < n_batches; ++k) {
    std::vector<int64_t> off;
    for (int b = 0; b < B; ++b) {
      const int64_t i = int64_t(k) * B + b;
      off.push_back(n > 1 ? i * last / (n - 1) : 0);
    }
    out.push_back(windows(val_, off, T));
  }
  return out;
}

double TokenData::val_unigram_entropy() const {
  const std::vector<double> p = unigram(val_, max_id_ + 1, 0);
  double h = 0;
  for (double x : p)
    if (x > 0) h -= x * std::log(x);
  return h;
}

double TokenData::val_unigram_cross_entropy() const {
  const std::vector<double> p = unigram(train_, std::max(vocab_, max_id_ + 1), 1);
  double s = 0;
  for (uint16_t t : val_) s -= std::log(p[t]);
  return s / double(val_.size());
}

}  // namespace bmh::train

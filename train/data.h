// Training data: text files tokenized with the bundled GPT-NeoX tokenizer or as raw bytes, or pre-tokenized
// uint16 shards in nanoGPT's layout (<dir>/train.bin and <dir>/val.bin, as data/*/prepare.py writes them with
// np.uint16 .tofile), with a held-out split. Batches are random windows as nanoGPT's train.py get_batch draws
// them, but each window's offset is a hash of (seed, step, micro-batch, row): the sampler keeps no state, so
// resuming at step s draws exactly the batches an uninterrupted run would.
//
// Bytes (vocabulary 256: id = byte value) is the small-vocabulary option: lossless for any file, no tokenizer
// to ship, and an embedding/head small enough that a tiny model's compute is in its blocks, where the
// architectures differ (the GPT-NeoX vocabulary of 50,304 would put most of a d_model-64 model in its head).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace bmh::train {

struct DataSpec {
  std::vector<std::string> text_files;  // text: tokenized whole, each file split train | held-out at its end
  std::string bin_dir;                  // or nanoGPT shards: <bin_dir>/train.bin, <bin_dir>/val.bin (uint16)
  std::string tokenizer = "bytes";      // text only: "bytes" or "gpt-neox" (data/tokenizer/gpt-neox-20b.json)
  double val_fraction = 0.1;            // text only: the last fraction of each file's tokens is held out
};

class TokenData {
 public:
  static TokenData load(const DataSpec& spec);
  const std::vector<uint16_t>& train_tokens() const { return train_; }
  const std::vector<uint16_t>& val_tokens() const { return val_; }
  int vocab_size() const { return vocab_; }      // tokenizer vocabulary (bytes: 256); for bins max id + 1
  int max_id() const { return max_id_; }
  std::string describe() const;                  // "tinyshakespeare.input.txt (bytes): 1003854 train, 111540 held-out"

  // Micro-batch `micro` of step `step`: [B, T] int64 windows of the train split.
  Tensor train_batch(uint64_t seed, int64_t step, int micro, int B, int T) const;
  // The fixed held-out windows: n_batches batches [B, T], offsets evenly spaced over the held-out split.
  std::vector<Tensor> val_batches(int n_batches, int B, int T) const;
  // Entropy (nats) of the held-out split's own unigram distribution: the loss of the best unigram model of
  // that text, a bar any model that uses context must pass. And the cross-entropy on the held-out split of the
  // train split's unigram distribution (add-one smoothed), what a trained unigram model would score.
  double val_unigram_entropy() const;
  double val_unigram_cross_entropy() const;

 private:
  std::vector<uint16_t> train_, val_;
  int vocab_ = 0, max_id_ = 0;
  std::string what_;
};

}  // namespace bmh::train

// The BPE model on byte-level symbols: a pre-token's bytes become the ids of their byte-level characters, then
// merges are applied lowest rank first, ties leftmost first (tokenizers/src/models/bpe/word.rs, Word::merge_all,
// without dropout), until none applies. A cache maps pre-token bytes to their ids; like HF's BPE_LOCAL_CACHE
// (bpe/model.rs) each thread has its own, so cached lookups take no lock and threads never contend.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace bmh {

class BytePairModel {
 public:
  // `vocab`: token string -> id; `merges`: in rank order. Throws naming the merge that refers to a missing token, or
  // the byte whose byte-level character is missing from the vocabulary.
  BytePairModel(const std::unordered_map<std::string, int32_t>& vocab,
                const std::vector<std::pair<std::string, std::string>>& merges, const std::string& source);
  ~BytePairModel();

  // Appends the ids of one pre-token given as its raw (not byte-level mapped) bytes. Thread-safe.
  void encode_word(std::string_view bytes, std::vector<int32_t>& out) const;
  // Same without the cache.
  void encode_word_uncached(std::string_view bytes, std::vector<int32_t>& out) const;
  // The two merge loops encode_word_uncached chooses between by length (exposed for the test that they agree):
  // HF's heap of (rank, position) candidates, and a scan for the least-ranked pair of words up to kScanMaxBytes.
  static constexpr size_t kScanMaxBytes = 64;
  void merge_with_heap(std::string_view bytes, std::vector<int32_t>& out) const;
  void merge_by_scan(std::string_view bytes, std::vector<int32_t>& out) const;

  size_t cache_entries() const;  // in the calling thread's cache
  void clear_cache() const;      // every thread's cache (each empties itself on its next use)

 private:
  struct Merge {
    uint32_t rank;
    int32_t new_id;
  };
  const Merge* find_merge(int32_t a, int32_t b) const;

  std::array<int32_t, 256> byte_ids_{};  // -1 for the bytes that never occur in UTF-8 when the vocabulary lacks them
  // (left id, right id) -> merge, in an open-addressing table (linear probing; key ~0 marks an empty slot).
  struct Slot {
    uint64_t key = ~uint64_t(0);
    Merge merge{};
  };
  std::vector<Slot> merge_slots_;
  int merge_shift_ = 64;
  uint64_t uid_;                                  // names this model's cache in each thread
  mutable std::atomic<uint64_t> generation_{0};  // clear_cache() bumps it

 public:
  struct LocalCache;  // defined in the .cpp

 private:
  LocalCache& local_cache() const;
};

}  // namespace bmh

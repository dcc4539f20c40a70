// BPE merges by rank with a sharded pre-token cache (see core/tokenizer_bpe.h).
#include "core/tokenizer_bpe.h"

#include <functional>
#include <mutex>
#include <algorithm>
#include <shared_mutex>

#include "core/error.h"
#include "core/tokenizer_byte_level.h"

namespace bmh {

namespace {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

constexpr size_t kShards = 64;
constexpr size_t kMaxEntriesPerShard = 1 << 14;  // ~1M pre-tokens in all
constexpr size_t kMaxCachedWordBytes = 256;      // HF caches words shorter than 256 bytes too (bpe/model.rs MAX_LENGTH)

}  // namespace

struct BytePairModel::Cache {
  struct Shard {
    mutable std::shared_mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> map;
  };
  Shard shards[kShards];
};

BytePairModel::BytePairModel(const std::unordered_map<std::string, int32_t>& vocab,
                             const std::vector<std::pair<std::string, std::string>>& merges, const std::string& source)
    : cache_(std::make_unique<Cache>()) {
  // Bytes C0, C1 and F5..FF never occur in UTF-8, and GPT-NeoX-20B's vocabulary indeed lacks their symbols; every
  // other byte must have one (HF would silently drop a character missing from the vocabulary when unk_token is null).
  for (int b = 0; b < 256; ++b) {
    auto it = vocab.find(byte_level::byte_to_utf8(static_cast<unsigned char>(b)));
    const bool never_in_utf8 = b == 0xC0 || b == 0xC1 || b >= 0xF5;
    if (it == vocab.end() && !never_in_utf8)
      fail("tokenizer ", source, ": model.vocab lacks the byte-level symbol of byte ", b, " (\"",
           byte_level::byte_to_utf8(static_cast<unsigned char>(b)), "\"); unk/byte-fallback handling is not implemented");
    byte_ids_[b] = it == vocab.end() ? -1 : it->second;
  }
  size_t capacity = 1024;
  while (capacity < merges.size() * 2) capacity *= 2;
  merge_slots_.assign(capacity, Slot{});
  merge_shift_ = 64 - __builtin_ctzll(capacity);
  // tokenizers/src/models/bpe/model.rs, BpeBuilder::build: rank = index in the list, new id = vocab[a + b]; a pair
  // listed twice keeps its last rank (the map is collected in order).
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = vocab.find(a), ib = vocab.find(b), iab = vocab.find(a + b);
    if (ia == vocab.end() || ib == vocab.end() || iab == vocab.end())
      fail("tokenizer ", source, ": model.merges[", rank, "] \"", a, " ", b, "\" refers to a token missing from model.vocab (\"",
           ia == vocab.end() ? a : ib == vocab.end() ? b : a + b, "\")");
    const uint64_t key = (uint64_t(uint32_t(ia->second)) << 32) | uint32_t(ib->second);
    size_t slot = size_t((key * 0x9E3779B97F4A7C15ull) >> merge_shift_);
    while (merge_slots_[slot].key != ~uint64_t(0) && merge_slots_[slot].key != key) slot = (slot + 1) & (capacity - 1);
    merge_slots_[slot] = Slot{key, Merge{uint32_t(rank), iab->second}};
  }
}

BytePairModel::~BytePairModel() = default;

const BytePairModel::Merge* BytePairModel::find_merge(int32_t a, int32_t b) const {
  const uint64_t key = (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
  const size_t mask = merge_slots_.size() - 1;
  for (size_t slot = size_t((key * 0x9E3779B97F4A7C15ull) >> merge_shift_);; slot = (slot + 1) & mask) {
    const Slot& s = merge_slots_[slot];
    if (s.key == key) return &s.merge;
    if (s.key == ~uint64_t(0)) return nullptr;
  }
}

// Word::merge_all: a min-heap of candidate merges ordered by (rank, position). A popped candidate is stale when its
// left symbol was absorbed (len 0), has no right neighbour, or the pair there no longer merges into the same id.
void BytePairModel::encode_word_uncached(std::string_view bytes, std::vector<int32_t>& out) const {
  if (bytes.empty()) return;
  if (bytes.size() == 1) {
    out.push_back(byte_ids_[static_cast<unsigned char>(bytes[0])]);
    return;
  }
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    int32_t len;
  };
  struct Candidate {
    uint32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  const int32_t n = int32_t(bytes.size());
  thread_local std::vector<Symbol> sym;
  sym.resize(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i)
    sym[size_t(i)] = {byte_ids_[static_cast<unsigned char>(bytes[size_t(i)])], i - 1, i + 1 < n ? i + 1 : -1, 1};

  // A binary min-heap in a reused buffer; (rank, pos) is a total order on live entries, so any heap pops in the same
  // order as HF's QuaternaryHeap.
  thread_local std::vector<Candidate> heap;
  heap.clear();
  auto push = [](const Candidate& c) {
    heap.push_back(c);
    std::push_heap(heap.begin(), heap.end(), std::greater<>{});
  };
  for (int32_t i = 0; i + 1 < n; ++i)
    if (const Merge* m = find_merge(sym[size_t(i)].id, sym[size_t(i + 1)].id)) heap.push_back({m->rank, i, m->new_id});
  std::make_heap(heap.begin(), heap.end(), std::greater<>{});

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
    const Candidate top = heap.back();
    heap.pop_back();
    Symbol& left = sym[size_t(top.pos)];
    if (left.len == 0 || left.next < 0) continue;
    const Symbol right = sym[size_t(left.next)];
    const Merge* current = find_merge(left.id, right.id);
    if (!current || current->new_id != top.new_id) continue;

    left.id = top.new_id;
    left.len += right.len;
    sym[size_t(left.next)].len = 0;
    left.next = right.next;
    if (right.next >= 0) sym[size_t(right.next)].prev = top.pos;

    if (left.prev >= 0)
      if (const Merge* m = find_merge(sym[size_t(left.prev)].id, left.id)) push({m->rank, left.prev, m->new_id});
    if (left.next >= 0)
      if (const Merge* m = find_merge(left.id, sym[size_t(left.next)].id)) push({m->rank, top.pos, m->new_id});
  }
  for (int32_t i = 0; i >= 0; i = sym[size_t(i)].next) out.push_back(sym[size_t(i)].id);
}

void BytePairModel::encode_word(std::string_view bytes, std::vector<int32_t>& out) const {
  if (bytes.size() >= kMaxCachedWordBytes) {
    encode_word_uncached(bytes, out);
    return;
  }
  auto& shard = cache_->shards[StringHash{}(bytes) % kShards];
  {
    std::shared_lock lock(shard.mu);
    auto it = shard.map.find(bytes);
    if (it != shard.map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t start = out.size();
  encode_word_uncached(bytes, out);
  std::unique_lock lock(shard.mu);
  if (shard.map.size() < kMaxEntriesPerShard)
    shard.map.try_emplace(std::string(bytes), out.begin() + std::ptrdiff_t(start), out.end());
}

size_t BytePairModel::cache_entries() const {
  size_t n = 0;
  for (auto& s : cache_->shards) {
    std::shared_lock lock(s.mu);
    n += s.map.size();
  }
  return n;
}

void BytePairModel::clear_cache() const {
  for (auto& s : cache_->shards) {
    std::unique_lock lock(s.mu);
    s.map.clear();
  }
}

}  // namespace bmh

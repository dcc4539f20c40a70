// BPE merges by rank with per-thread pre-token caches (see core/tokenizer_bpe.h).
#include "core/tokenizer_bpe.h"

#include <algorithm>
#include <functional>
#include <mutex>
#include <unordered_set>

#include "core/error.h"
#include "core/tokenizer_byte_level.h"

namespace bmh {

namespace {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

constexpr size_t kMaxCacheEntries = 1 << 18;  // per thread and model; beyond it words are not cached (as HF)
constexpr size_t kMaxCachedWordBytes = 256;   // HF caches words shorter than 256 bytes too (bpe/model.rs MAX_LENGTH)

std::atomic<uint64_t> next_uid{1};
std::mutex live_mu;
std::unordered_set<uint64_t> live_models;  // uids of models not yet destroyed

}  // namespace

struct BytePairModel::LocalCache {
  uint64_t generation = 0;
  std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> map;
};

namespace {

struct ThreadCaches {
  std::unordered_map<uint64_t, BytePairModel::LocalCache*> by_model;  // owned
  uint64_t last_uid = 0;
  BytePairModel::LocalCache* last = nullptr;
  ~ThreadCaches() {
    for (auto& [uid, cache] : by_model) delete cache;
  }
};
thread_local ThreadCaches thread_caches;

}  // namespace

BytePairModel::BytePairModel(const std::unordered_map<std::string, int32_t>& vocab,
                             const std::vector<std::pair<std::string, std::string>>& merges, const std::string& source)
    : uid_(next_uid++) {
  {
    std::lock_guard lock(live_mu);
    live_models.insert(uid_);
  }
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

BytePairModel::~BytePairModel() {
  std::lock_guard lock(live_mu);
  live_models.erase(uid_);
}

// This thread's cache for this model; a thread that meets a new model first frees its caches of destroyed ones.
BytePairModel::LocalCache& BytePairModel::local_cache() const {
  ThreadCaches& tc = thread_caches;
  if (tc.last_uid != uid_) {
    auto it = tc.by_model.find(uid_);
    if (it == tc.by_model.end()) {
      {
        std::lock_guard lock(live_mu);
        for (auto i = tc.by_model.begin(); i != tc.by_model.end();) {
          if (live_models.count(i->first)) {
            ++i;
          } else {
            delete i->second;
            i = tc.by_model.erase(i);
          }
        }
      }
      it = tc.by_model.emplace(uid_, new LocalCache).first;
    }
    tc.last_uid = uid_;
    tc.last = it->second;
  }
  LocalCache& c = *tc.last;
  const uint64_t g = generation_.load(std::memory_order_relaxed);
  if (c.generation != g) {
    c.map.clear();
    c.generation = g;
  }
  return c;
}

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
  if (bytes.size() <= kScanMaxBytes)
    merge_by_scan(bytes, out);
  else
    merge_with_heap(bytes, out);
}

// The same merge order as merge_with_heap, for short words: keep the rank of every adjacent pair in an array and
// merge the pair of least (rank, position) until none is left. Equivalent to HF's heap because a stale heap entry
// never passes its check there: the text a position's pair spans only grows, so the pair now at that position
// concatenates to a different (longer) token than the entry's new id.
void BytePairModel::merge_by_scan(std::string_view bytes, std::vector<int32_t>& out) const {
  constexpr uint32_t kNone = ~uint32_t(0);
  int32_t ids[kScanMaxBytes];
  uint32_t ranks[kScanMaxBytes];  // ranks[i]: merge of ids[i] and ids[i + 1]
  int32_t merged[kScanMaxBytes];  // merged[i]: the id that merge makes
  size_t n = bytes.size();
  for (size_t i = 0; i < n; ++i) ids[i] = byte_ids_[static_cast<unsigned char>(bytes[i])];
  auto pair_rank = [&](size_t i) {
    const Merge* m = find_merge(ids[i], ids[i + 1]);
    ranks[i] = m ? m->rank : kNone;
    merged[i] = m ? m->new_id : -1;
  };
  for (size_t i = 0; i + 1 < n; ++i) pair_rank(i);
  while (n > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < n; ++i)
      if (ranks[i] < ranks[best]) best = i;
    if (ranks[best] == kNone) break;
    ids[best] = merged[best];
    for (size_t i = best + 1; i + 1 < n; ++i) ids[i] = ids[i + 1];
    for (size_t i = best + 1; i + 2 < n; ++i) {
      ranks[i] = ranks[i + 1];
      merged[i] = merged[i + 1];
    }
    --n;
    if (best + 1 < n) pair_rank(best);
    if (best > 0) pair_rank(best - 1);
  }
  out.insert(out.end(), ids, ids + n);
}

void BytePairModel::merge_with_heap(std::string_view bytes, std::vector<int32_t>& out) const {
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
  LocalCache& cache = local_cache();
  if (auto it = cache.map.find(bytes); it != cache.map.end()) {
    out.insert(out.end(), it->second.begin(), it->second.end());
    return;
  }
  const size_t start = out.size();
  encode_word_uncached(bytes, out);
  if (cache.map.size() < kMaxCacheEntries)
    cache.map.try_emplace(std::string(bytes), out.begin() + std::ptrdiff_t(start), out.end());
}

size_t BytePairModel::cache_entries() const { return local_cache().map.size(); }

void BytePairModel::clear_cache() const { generation_.fetch_add(1, std::memory_order_relaxed); }

}  // namespace bmh

// Scoring on the CPU reference (RefModel::score_groups): each shared prefix runs once, sequences run packed back to
// back in one row per thread (no padding), and the LM head runs only at the positions a request scores.
//
//   phase 1  every group's shared prefix from a fresh state (its state and last logits kept), and every request
//            of a group without a prefix whole;
//   phase 2  every remainder tokens[prefix .. n-2] from a copy of its group's prefix state.
//
// A request's scored positions are n-1-C .. n-2 (lm-eval HFLM._loglikelihood_tokens: the model sees tokens[:-1],
// position p predicts tokens[p+1]); the prefix's last position p = prefix-1 scores a request's first continuation
// token when prefix = n - C. Per-position log-probabilities are summed in position order, as for an unshared run.
// With ScoreBatchOptions::deterministic every product runs one row at a time (row_invariant_products), so a
// request's result does not depend on what else is in the call, nor on whether its prefix was shared.
#include <algorithm>
#include <atomic>
#include <future>
#include <thread>

#include "core/error.h"
#include "reference/model.h"

namespace bmh::ref {

namespace {

// Runs fn(b) for b in [0, n) on up to hardware_concurrency threads.
template <class Fn> void parallel_for(int n, Fn fn) {
  const int workers = std::max(1, std::min<int>(n, int(std::thread::hardware_concurrency())));
  std::vector<std::future<void>> jobs;
  std::atomic<int> next{0};
  for (int w = 0; w < workers; ++w)
    jobs.push_back(std::async(std::launch::async, [&] {
      for (int b = next++; b < n; b = next++) fn(b);
    }));
  for (auto& j : jobs) j.get();  // rethrows the first error
}

// A logits row a request needs: local row in its piece, the token it predicts, and where its log-prob goes.
struct HeadTarget {
  int64_t row = 0, token = 0;
  size_t request = 0;
  int slot = 0;  // index among the request's scored positions
};

// One sequence (or remainder) of a packed row.
template <class T> struct Piece {
  std::vector<int64_t> tokens;
  SequenceState<T>* state = nullptr;  // the state before tokens[0]; advanced by the run
  std::vector<HeadTarget> targets;
};

struct Scored {
  std::vector<double> logprob;  // per scored position, in position order
  std::vector<char> greedy;
};

// Splits pieces into at most `rows` packed rows of balanced token counts (longest piece to the lightest row).
template <class T> std::vector<std::vector<Piece<T>*>> pack_rows(std::vector<Piece<T>>& pieces, int rows) {
  std::vector<Piece<T>*> order;
  for (auto& p : pieces) order.push_back(&p);
  std::stable_sort(order.begin(), order.end(),
                   [](const Piece<T>* a, const Piece<T>* b) { return a->tokens.size() > b->tokens.size(); });
  rows = std::max(1, std::min<int>(rows, int(order.size())));
  std::vector<std::vector<Piece<T>*>> out;
  out.resize(size_t(rows));
  std::vector<size_t> load(size_t(rows), 0);
  for (Piece<T>* p : order) {
    size_t r = size_t(std::min_element(load.begin(), load.end()) - load.begin());
    out[r].push_back(p);
    load[r] += p->tokens.size();
  }
  return out;
}

// Runs the pieces packed into rows, one thread per row, and writes each target's log-prob into `scored`.
template <class T>
void run_pieces(const RefModel<T>& m, std::vector<Piece<T>>& pieces, bool deterministic, std::vector<Scored>& scored) {
  if (pieces.empty()) return;
  std::vector<std::vector<Piece<T>*>> rows = pack_rows(pieces, int(std::thread::hardware_concurrency()));
  const int64_t V = m.config().vocab_size;
  parallel_for(int(rows.size()), [&](int r) {
    struct Restore {
      bool old = row_invariant_products();
      ~Restore() { row_invariant_products() = old; }
    } restore;
    row_invariant_products() = deterministic;
    std::vector<int64_t> tokens, head;
    PackedSegments<T> segs;
    std::vector<std::pair<const HeadTarget*, int64_t>> wanted;  // target, its row in the head output
    for (Piece<T>* p : rows[size_t(r)]) {
      const int64_t base = int64_t(tokens.size());
      segs.start.push_back(base);
      segs.state.push_back(p->state);
      tokens.insert(tokens.end(), p->tokens.begin(), p->tokens.end());
      for (const HeadTarget& t : p->targets) {
        if (head.empty() || head.back() != base + t.row) head.push_back(base + t.row);
        wanted.emplace_back(&t, int64_t(head.size()) - 1);
      }
    }
    Mat<T> logits = m.run_packed(tokens, segs, head);
    for (const auto& [t, row] : wanted) {
      auto [lp, is_max] = log_softmax_at(logits.row(row).data(), V, t->token);
      scored[t->request].logprob[size_t(t->slot)] = lp;
      scored[t->request].greedy[size_t(t->slot)] = is_max;
    }
  });
}

}  // namespace

template <class T> std::vector<ScoreResult> RefModel<T>::score(const std::vector<ScoreRequest>& requests) {
  std::vector<ScoreGroup> groups;
  for (const ScoreRequest& r : requests) groups.push_back({0, {r}});
  return score_groups(groups, {});
}

template <class T>
std::vector<ScoreResult> RefModel<T>::score_groups(const std::vector<ScoreGroup>& groups, const ScoreBatchOptions& opt) {
  std::vector<const ScoreRequest*> reqs;
  for (const ScoreGroup& g : groups) {
    check_score_group(g, cfg_.vocab_size);
    for (const ScoreRequest& r : g.requests) reqs.push_back(&r);
  }
  std::vector<Scored> scored(reqs.size());
  for (size_t q = 0; q < reqs.size(); ++q) {
    scored[q].logprob.assign(size_t(reqs[q]->n_continuation), 0.0);
    scored[q].greedy.assign(size_t(reqs[q]->n_continuation), 0);
  }
  // Targets of request q at positions [from, to): position p predicts tokens[p+1]; rows local to a piece from `base`.
  auto add_targets = [&](Piece<T>& piece, size_t q, int64_t from, int64_t to, int64_t base) {
    const ScoreRequest& r = *reqs[q];
    const int64_t first = int64_t(r.tokens.size()) - 1 - r.n_continuation;
    for (int64_t p = std::max(from, first); p < to; ++p)
      piece.targets.push_back({p - base, r.tokens[size_t(p + 1)], q, int(p - first)});
  };

  // Phase 1: prefixes and whole requests, each from a fresh state.
  std::vector<SequenceState<T>> fresh;  // one per phase-1 piece (prefix states are kept for phase 2)
  std::vector<Piece<T>> phase1;
  std::vector<int> prefix_piece(groups.size(), -1);
  size_t q = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    const int P = groups[g].prefix;
    if (P > 0) {
      prefix_piece[g] = int(phase1.size());
      Piece<T> piece;
      piece.tokens.assign(groups[g].requests[0].tokens.begin(), groups[g].requests[0].tokens.begin() + P);
      for (size_t k = 0; k < groups[g].requests.size(); ++k) add_targets(piece, q + k, P - 1, P, 0);
      phase1.push_back(std::move(piece));
    } else {
      for (size_t k = 0; k < groups[g].requests.size(); ++k) {
        const ScoreRequest& r = groups[g].requests[k];
        Piece<T> piece;
        piece.tokens.assign(r.tokens.begin(), r.tokens.end() - 1);
        add_targets(piece, q + k, 0, int64_t(r.tokens.size()) - 1, 0);
        phase1.push_back(std::move(piece));
      }
    }
    q += groups[g].requests.size();
  }
  fresh.reserve(phase1.size());
  for (Piece<T>& p : phase1) {
    fresh.push_back(new_state());
    p.state = &fresh.back();
  }
  run_pieces(*this, phase1, opt.deterministic, scored);

  // Phase 2: every remainder from a copy of its prefix's state.
  std::vector<SequenceState<T>> copies;
  std::vector<Piece<T>> phase2;
  q = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    const int P = groups[g].prefix;
    for (size_t k = 0; P > 0 && k < groups[g].requests.size(); ++k) {
      const ScoreRequest& r = groups[g].requests[k];
      if (int64_t(r.tokens.size()) - 1 <= P) continue;  // scored entirely from the prefix's last logits
      Piece<T> piece;
      piece.tokens.assign(r.tokens.begin() + P, r.tokens.end() - 1);
      add_targets(piece, q + k, P, int64_t(r.tokens.size()) - 1, P);
      phase2.push_back(std::move(piece));
    }
    q += groups[g].requests.size();
  }
  copies.reserve(phase2.size());
  size_t next = 0;
  q = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    const int P = groups[g].prefix;
    for (size_t k = 0; P > 0 && k < groups[g].requests.size(); ++k)
      if (int64_t(groups[g].requests[k].tokens.size()) - 1 > P) {
        copies.push_back(*phase1[size_t(prefix_piece[g])].state);
        phase2[next++].state = &copies.back();
      }
  }
  run_pieces(*this, phase2, opt.deterministic, scored);

  std::vector<ScoreResult> out(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    double sum = 0;
    bool greedy = true;
    for (size_t s = 0; s < scored[i].logprob.size(); ++s) {
      sum += scored[i].logprob[s];
      greedy = greedy && scored[i].greedy[s];
    }
    out[i] = {sum, greedy};
  }
  return out;
}

// The rest of RefModel is instantiated in model.cpp.
#define BMH_INSTANTIATE_SCORE(T)                                                                                  \
  template std::vector<ScoreResult> RefModel<T>::score(const std::vector<ScoreRequest>&);                        \
  template std::vector<ScoreResult> RefModel<T>::score_groups(const std::vector<ScoreGroup>&, const ScoreBatchOptions&);
BMH_INSTANTIATE_SCORE(float)
BMH_INSTANTIATE_SCORE(double)

}  // namespace bmh::ref

// Expert-routing statistics: see evals/routing_stats.h for every definition.
#include "evals/routing_stats.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace bmh {

double load_cv(const std::vector<int64_t>& c) {
  if (c.empty()) return 0;
  double mean = 0, var = 0;
  for (auto x : c) mean += double(x);
  mean /= double(c.size());
  if (mean == 0) return 0;
  for (auto x : c) var += (double(x) - mean) * (double(x) - mean);
  return std::sqrt(var / double(c.size())) / mean;
}

double load_max_over_mean(const std::vector<int64_t>& c) {
  if (c.empty()) return 0;
  double mean = 0;
  for (auto x : c) mean += double(x);
  mean /= double(c.size());
  return mean == 0 ? 0 : double(*std::max_element(c.begin(), c.end())) / mean;
}

double normalized_entropy(const std::vector<int64_t>& c) {
  if (c.size() < 2) return 0;
  double n = 0, h = 0;
  for (auto x : c) n += double(x);
  if (n == 0) return 0;
  for (auto x : c)
    if (x > 0) h -= double(x) / n * std::log(double(x) / n);
  return h / std::log(double(c.size()));
}

namespace {

int bin_of(double v, int bins) {
  int b = int(std::floor(v * bins));
  return std::clamp(b, 0, bins - 1);
}

// Probabilities of all experts from one token's router logits, as the router turns them into gates.
void router_probs(RouterKind kind, const float* logits, int E, std::vector<double>& p) {
  p.resize(E);
  if (kind == RouterKind::SigmoidTop1) {
    for (int e = 0; e < E; ++e) p[e] = 1.0 / (1.0 + std::exp(-double(logits[e])));
  } else {
    double m = logits[0], s = 0;
    for (int e = 1; e < E; ++e) m = std::max(m, double(logits[e]));
    for (int e = 0; e < E; ++e) s += p[e] = std::exp(double(logits[e]) - m);
    for (int e = 0; e < E; ++e) p[e] /= s;
  }
}

}  // namespace

RoutingAccumulator::RoutingAccumulator(const ModelConfig& cfg, RoutingOptions opt) : cfg_(cfg), opt_(std::move(opt)) {
  if (opt_.gate_bins < 1 || opt_.margin_bins < 1 || opt_.top_tokens < 0)
    fail("routing: gate_bins and margin_bins must be >= 1 and top_tokens >= 0");
  if (opt_.position_edges.empty())
    for (int64_t e = 0; e <= (int64_t(1) << 20); e = e == 0 ? 1 : 2 * e) opt_.position_edges.push_back(e);
  if (opt_.position_edges[0] != 0 || !std::is_sorted(opt_.position_edges.begin(), opt_.position_edges.end()) ||
      std::adjacent_find(opt_.position_edges.begin(), opt_.position_edges.end()) != opt_.position_edges.end())
    fail("routing: position_edges must start at 0 and increase strictly");
  const int P = int(opt_.position_edges.size());
  for (int i : cfg.moe_blocks()) {
    Layer l;
    l.block = i;
    l.n_experts = cfg.blocks[i].ffn.n_experts;
    l.router = cfg.blocks[i].ffn.router;
    l.top_k = cfg.blocks[i].ffn.top_k;
    l.counts.assign(l.n_experts, 0);
    l.gate_hist.assign(opt_.gate_bins, 0);
    l.margin_hist.assign(opt_.margin_bins, 0);
    l.position_counts.assign(size_t(P) * l.n_experts, 0);
    layers_.push_back(std::move(l));
  }
  if (layers_.empty()) fail("routing: model ", cfg.name, " has no MoE blocks");
  for (size_t i = 0; i + 1 < layers_.size(); ++i)
    transitions_.emplace_back(size_t(layers_[i].n_experts) * layers_[i + 1].n_experts, 0);
}

void RoutingAccumulator::add(const std::vector<RouteRecord>& routes, const Tensor& ids, const std::string& source,
                             const std::vector<int>* lengths) {
  if (ids.rank() != 2 || ids.dtype() != DType::I64) fail("routing: ids must be int64 [B, T], got ", ids.describe());
  const int64_t B = ids.dim(0), T = ids.dim(1);
  if (routes.size() != layers_.size())
    fail("routing: ", routes.size(), " route records for ", layers_.size(), " MoE blocks of ", cfg_.name);
  if (lengths && int64_t(lengths->size()) != B) fail("routing: ", lengths->size(), " lengths for batch ", B);
  auto len = [&](int64_t b) { return lengths ? std::min<int64_t>((*lengths)[b], T) : T; };
  const int64_t* tok = ids.data<int64_t>();
  const auto& edges = opt_.position_edges;
  std::vector<double> p;

  // Check every record before counting anything, so a bad record leaves the accumulator unchanged.
  for (size_t li = 0; li < layers_.size(); ++li) {
    const Layer& L = layers_[li];
    const RouteRecord& r = routes[li];
    const int E = L.n_experts;
    if (r.block != L.block || r.n_experts != E)
      fail("routing: record ", li, " is block ", r.block, " with ", r.n_experts, " experts; expected block ",
           L.block, " with ", E);
    const int64_t k = L.top_k;
    if (r.top_k != k || int64_t(r.expert.size()) != B * T * k || int64_t(r.prob.size()) != B * T * k ||
        int64_t(r.router_logits.size()) != B * T * E)
      fail("routing: block ", L.block, ": record sizes ", r.expert.size(), "/", r.prob.size(), "/",
           r.router_logits.size(), " (top-", r.top_k, ") do not match [B=", B, ", T=", T, ", k=", k, ", E=", E, "]");
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < len(b); ++t)
        for (int64_t j = 0; j < k; ++j) {
          const int64_t e = r.expert[(b * T + t) * k + j];
          if (e < 0 || e >= E)
            fail("routing: block ", L.block, ": expert ", e, " at [", b, ", ", t, ", slot ", j, "] outside [0, ", E, ")");
        }
  }
  int src = int(std::find(sources_.begin(), sources_.end(), source) - sources_.begin());
  if (src == int(sources_.size())) sources_.push_back(source);

  for (size_t li = 0; li < layers_.size(); ++li) {
    Layer& L = layers_[li];
    const RouteRecord& r = routes[li];
    const int E = L.n_experts;
    auto& src_counts = L.source_counts[src];
    if (src_counts.empty()) src_counts.assign(E, 0);
    const int k = L.top_k;
    for (int64_t b = 0; b < B; ++b) {
      size_t bucket = 0;
      for (int64_t t = 0; t < len(b); ++t) {
        const int64_t i = b * T + t;
        const int64_t* ex = &r.expert[i * k];
        while (bucket + 1 < edges.size() && edges[bucket + 1] <= t) ++bucket;
        auto& tc = L.token_counts[tok[i]];
        if (tc.empty()) tc.assign(E, 0);
        // Every one of the k slots is an assignment: counts, gates, positions, sources and tokens count slots.
        for (int j = 0; j < k; ++j) {
          const int64_t e = ex[j];
          ++L.counts[e];
          ++src_counts[e];
          ++L.position_counts[bucket * E + e];
          L.gate_sum += r.prob[i * k + j];
          ++L.gate_hist[bin_of(r.prob[i * k + j], opt_.gate_bins)];
          ++tc[e];
        }
        // Margin: the weakest chosen expert's probability minus the best unchosen one's.
        router_probs(L.router, &r.router_logits[i * E], E, p);
        double chosen = 2, other = -1;
        for (int e = 0; e < E; ++e) {
          const bool in = std::find(ex, ex + k, int64_t(e)) != ex + k;
          if (in) chosen = std::min(chosen, p[e]);
          else other = std::max(other, p[e]);
        }
        const double margin = E > k ? chosen - other : 1.0;
        L.margin_sum += margin;
        if (margin < 0) ++L.margin_negative;
        else ++L.margin_hist[bin_of(margin, opt_.margin_bins)];
        if (!r.tie.empty()) L.ties += r.tie[i];
        if (t + 1 < len(b)) {  // experts the next token shares with this one, out of k
          ++L.pairs;
          const int64_t* nx = &r.expert[(i + 1) * k];
          for (int j = 0; j < k; ++j) L.same_slots += std::find(nx, nx + k, ex[j]) != nx + k;
        }
        if (li + 1 < layers_.size()) {  // every (slot here, slot there) pair
          const int k2 = layers_[li + 1].top_k;
          for (int j = 0; j < k; ++j)
            for (int j2 = 0; j2 < k2; ++j2)
              ++transitions_[li][ex[j] * layers_[li + 1].n_experts + routes[li + 1].expert[i * k2 + j2]];
        }
      }
    }
  }
  sequences_ += B;
}

RoutingStats RoutingAccumulator::finish() const {
  RoutingStats s;
  s.position_edges = opt_.position_edges;
  s.sources = sources_;
  s.sequences = sequences_;
  s.options = opt_;
  const int S = int(sources_.size());
  for (const Layer& L : layers_) {
    LayerRouting o;
    o.block = L.block;
    o.n_experts = L.n_experts;
    const int E = L.n_experts;
    o.top_k = L.top_k;
    o.counts = L.counts;
    for (auto c : L.counts) o.assignments += c;
    o.tokens = o.assignments / L.top_k;
    o.ties = L.ties;
    const double n = double(o.assignments), ntok = double(o.tokens);
    o.fraction.resize(E);
    for (int e = 0; e < E; ++e) o.fraction[e] = n > 0 ? double(L.counts[e]) / n : 0;
    o.cv = load_cv(L.counts);
    o.max_over_mean = load_max_over_mean(L.counts);
    o.entropy = normalized_entropy(L.counts);
    o.gate_mean = n > 0 ? L.gate_sum / n : 0;
    o.gate_hist = L.gate_hist;
    o.margin_mean = ntok > 0 ? L.margin_sum / ntok : 0;
    o.margin_hist = L.margin_hist;
    o.margin_negative = L.margin_negative;
    o.adjacent_pairs = L.pairs;
    o.same_expert = L.pairs > 0 ? double(L.same_slots) / (double(L.pairs) * L.top_k) : 0;
    for (double f : o.fraction) o.same_chance += f * f;
    o.same_chance *= L.top_k;  // P(e in a token's k slots) ~ k f_e, so E|shared| / k ~ k sum f_e^2
    o.position_counts = L.position_counts;
    o.source_counts.assign(size_t(S) * E, 0);
    for (const auto& [si, c] : L.source_counts) {
      std::copy(c.begin(), c.end(), o.source_counts.begin() + size_t(si) * E);
    }
    for (int si = 0; si < S; ++si) {
      std::vector<int64_t> c(o.source_counts.begin() + size_t(si) * E, o.source_counts.begin() + size_t(si + 1) * E);
      o.source_cv.push_back(load_cv(c));
      o.source_entropy.push_back(normalized_entropy(c));
    }
    // Top and most specific tokens per expert.
    o.top_tokens.resize(E);
    o.specific_tokens.resize(E);
    for (int e = 0; e < E; ++e) {
      std::vector<TokenCount> all, specific;
      for (const auto& [tok, c] : L.token_counts) {
        if (c[e] == 0) continue;
        int64_t total = 0;
        for (auto x : c) total += x;
        all.push_back({tok, c[e], total});
        if (total >= opt_.min_specific_count) specific.push_back({tok, c[e], total});
      }
      auto k = [&](std::vector<TokenCount>& v, auto less) {
        std::stable_sort(v.begin(), v.end(), less);
        if (int(v.size()) > opt_.top_tokens) v.resize(opt_.top_tokens);
      };
      k(all, [](const TokenCount& a, const TokenCount& b) {
        return a.count != b.count ? a.count > b.count : a.token < b.token;
      });
      k(specific, [](const TokenCount& a, const TokenCount& b) {
        // share a.count/a.total vs b.count/b.total, compared exactly in integers
        const __int128 l = __int128(a.count) * b.total, r = __int128(b.count) * a.total;
        if (l != r) return l > r;
        return a.total != b.total ? a.total > b.total : a.token < b.token;
      });
      o.top_tokens[e] = std::move(all);
      o.specific_tokens[e] = std::move(specific);
    }
    s.layers.push_back(std::move(o));
  }
  for (size_t li = 0; li + 1 < layers_.size(); ++li) {
    LayerTransition t;
    t.from_block = layers_[li].block;
    t.to_block = layers_[li + 1].block;
    t.from_experts = layers_[li].n_experts;
    t.to_experts = layers_[li + 1].n_experts;
    t.counts = transitions_[li];
    t.prob.assign(t.counts.size(), 0);
    const int Ef = t.from_experts, Et = t.to_experts;
    std::vector<double> row(Ef, 0), col(Et, 0);
    double n = 0;
    for (int i = 0; i < Ef; ++i)
      for (int j = 0; j < Et; ++j) {
        row[i] += double(t.counts[i * Et + j]);
        col[j] += double(t.counts[i * Et + j]);
        n += double(t.counts[i * Et + j]);
      }
    for (int i = 0; i < Ef; ++i)
      for (int j = 0; j < Et; ++j) {
        const double c = double(t.counts[i * Et + j]);
        if (row[i] > 0) t.prob[i * Et + j] = c / row[i];
        if (c > 0) t.mutual_information += c / n * std::log2(c * n / (row[i] * col[j]));
      }
    s.transitions.push_back(std::move(t));
  }
  return s;
}

void write_routing_h5(const RoutingStats& s, h5::Group g, const std::function<std::string(int64_t)>& decode) {
  const int L = int(s.layers.size());
  if (L == 0) fail("routing: no MoE layers to write");
  g.attr("description", "expert-routing statistics per MoE layer (evals/routing_stats.h defines each)");
  g.attr("sequences", s.sequences);
  std::vector<int64_t> blocks, tokens;
  std::vector<double> cv, mom, ent, gate_mean, margin_mean, same, chance;
  for (const auto& l : s.layers) {
    blocks.push_back(l.block);
    tokens.push_back(l.tokens);
    cv.push_back(l.cv);
    mom.push_back(l.max_over_mean);
    ent.push_back(l.entropy);
    gate_mean.push_back(l.gate_mean);
    margin_mean.push_back(l.margin_mean);
    same.push_back(l.same_expert);
    chance.push_back(l.same_chance);
  }
  g.write("blocks", blocks, {"block index (family's layer list) of each MoE layer", "", {"layer"}});
  g.write("tokens", tokens, {"tokens routed in each layer", "tokens", {"layer"}});
  g.write("cv", cv, {"coefficient of variation of tokens per expert", "", {"layer"}});
  g.write("max_over_mean", mom, {"max over mean of tokens per expert", "", {"layer"}});
  g.write("entropy", ent, {"entropy of the expert distribution / ln E", "", {"layer"}});
  g.write("gate_mean", gate_mean, {"mean gate value of the chosen expert", "", {"layer"}});
  g.write("margin_mean", margin_mean, {"mean min p(chosen) - max p(unchosen)", "", {"layer"}});
  g.write("same_expert", same, {"mean fraction of a token's experts the next token shares", "fraction", {"layer"}});
  g.write("same_chance", chance, {"k * sum of squared expert fractions (chance level of same_expert)", "fraction", {"layer"}});
  g.write("position_edges", s.position_edges, {"first position of each position bucket", "tokens", {"bucket"}});
  g.write("sources", s.sources, {"text sources / tasks, in first-seen order", "", {"source"}});

  // Rectangular [layer, expert] arrays when every layer has the same number of experts (the usual case).
  const int E = s.layers[0].n_experts;
  bool same_E = true;
  for (const auto& l : s.layers) same_E = same_E && l.n_experts == E;
  if (same_E) {
    std::vector<int64_t> counts;
    std::vector<double> frac;
    for (const auto& l : s.layers) {
      counts.insert(counts.end(), l.counts.begin(), l.counts.end());
      frac.insert(frac.end(), l.fraction.begin(), l.fraction.end());
    }
    g.write("tokens_per_expert", counts, {L, E}, {"assignments (token, slot) routed to each expert; top-k counts k per token", "tokens", {"layer", "expert"}});
    g.write("fraction_per_expert", frac, {L, E}, {"fraction of assignments routed to each expert", "fraction", {"layer", "expert"}});
  }
  for (int li = 0; li < L; ++li) {
    const auto& l = s.layers[li];
    h5::Group lg = g.group("layer_" + std::to_string(l.block));
    const int64_t El = l.n_experts, P = int64_t(s.position_edges.size()), S = int64_t(s.sources.size());
    lg.attr("block", l.block);
    lg.attr("n_experts", l.n_experts);
    lg.attr("top_k", l.top_k);
    lg.attr("ties", l.ties);
    lg.attr("cv", l.cv);
    lg.attr("entropy", l.entropy);
    lg.attr("margin_negative", l.margin_negative);
    lg.write("counts", l.counts, {"tokens routed to each expert", "tokens", {"expert"}});
    lg.write("gate_hist", l.gate_hist, {"histogram of the chosen gate value, equal bins over [0, 1]", "tokens", {"bin"}});
    lg.write("margin_hist", l.margin_hist,
             {"histogram of p(chosen) - p(runner-up), equal bins over [0, 1]", "tokens", {"bin"}});
    lg.write("position_counts", l.position_counts, {P, El},
             {"tokens per expert by position bucket (see position_edges)", "tokens", {"bucket", "expert"}});
    lg.write("source_counts", l.source_counts, {S, El}, {"tokens per expert by source (see sources)", "tokens", {"source", "expert"}});
    lg.write("source_cv", l.source_cv, {"coefficient of variation per source", "", {"source"}});
    lg.write("source_entropy", l.source_entropy, {"normalized entropy per source", "", {"source"}});
    const int64_t K = s.options.top_tokens;
    for (const char* kind : {"top", "specific"}) {
      const auto& v = std::string(kind) == "top" ? l.top_tokens : l.specific_tokens;
      std::vector<int64_t> ids(size_t(El * K), -1), cnt(size_t(El * K), 0), tot(size_t(El * K), 0);
      std::vector<std::string> text(size_t(El * K));
      for (int64_t e = 0; e < El; ++e)
        for (size_t k = 0; k < v[e].size(); ++k) {
          ids[e * K + k] = v[e][k].token;
          cnt[e * K + k] = v[e][k].count;
          tot[e * K + k] = v[e][k].total;
          text[e * K + k] = decode ? decode(v[e][k].token) : std::to_string(v[e][k].token);
        }
      const std::string p = std::string(kind) + "_tokens";
      const std::string what = std::string(kind) == "top" ? "most frequent tokens per expert (-1 = none)"
                                                          : "tokens ranked by the share of their occurrences at this expert (-1 = none)";
      lg.write(p + "_ids", ids, {El, K}, {what, "", {"expert", "rank"}});
      lg.write(p + "_text", text, {El, K}, {what + ", decoded", "", {"expert", "rank"}});
      lg.write(p + "_count", cnt, {El, K}, {"occurrences routed to this expert", "tokens", {"expert", "rank"}});
      lg.write(p + "_total", tot, {El, K}, {"occurrences in the layer", "tokens", {"expert", "rank"}});
    }
  }
  for (const auto& t : s.transitions) {
    h5::Group tg = g.group("transition_" + std::to_string(t.from_block) + "_" + std::to_string(t.to_block));
    tg.attr("from_block", t.from_block);
    tg.attr("to_block", t.to_block);
    tg.attr("mutual_information_bits", t.mutual_information);
    const int64_t Ef = t.from_experts, Et = t.to_experts;
    tg.write("counts", t.counts, {Ef, Et}, {"tokens with expert i here and j at the next MoE layer", "tokens", {"from_expert", "to_expert"}});
    tg.write("prob", t.prob, {Ef, Et}, {"P(expert j at the next MoE layer | expert i here)", "probability", {"from_expert", "to_expert"}});
  }
}

nlohmann::json routing_summary_json(const RoutingStats& s, const std::function<std::string(int64_t)>& decode) {
  nlohmann::json j;
  j["sequences"] = s.sequences;
  j["sources"] = s.sources;
  auto& layers = j["layers"] = nlohmann::json::array();
  for (const auto& l : s.layers) {
    nlohmann::json o;
    o["block"] = l.block;
    o["tokens"] = l.tokens;
    o["top_k"] = l.top_k;
    o["ties"] = l.ties;
    o["counts"] = l.counts;
    o["cv"] = l.cv;
    o["max_over_mean"] = l.max_over_mean;
    o["entropy"] = l.entropy;
    o["gate_mean"] = l.gate_mean;
    o["margin_mean"] = l.margin_mean;
    o["same_expert"] = l.same_expert;
    o["same_chance"] = l.same_chance;
    auto& top = o["top_tokens"] = nlohmann::json::array();
    for (const auto& v : l.top_tokens) {
      nlohmann::json e = nlohmann::json::array();
      for (size_t k = 0; k < std::min<size_t>(v.size(), 5); ++k)
        e.push_back(decode ? decode(v[k].token) : std::to_string(v[k].token));
      top.push_back(e);
    }
    layers.push_back(o);
  }
  auto& tr = j["transitions"] = nlohmann::json::array();
  for (const auto& t : s.transitions)
    tr.push_back({{"from_block", t.from_block}, {"to_block", t.to_block}, {"mutual_information_bits", t.mutual_information}});
  return j;
}

}  // namespace bmh

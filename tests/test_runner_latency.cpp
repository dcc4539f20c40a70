// Latency measurement (evals/latency.h) against a fake model whose costs are known: it sleeps a fixed time per
// prefilled token and per decode step, and counts its calls.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "core/error.h"
#include "evals/latency.h"

namespace bmh {
namespace {

struct Calls {
  int prefills = 0, steps = 0, decoders = 0;
  std::vector<int64_t> prefill_lengths;
};

class SleepyDecoder : public Decoder {
 public:
  SleepyDecoder(Calls& c, int batch, int vocab) : c_(c), batch_(batch), vocab_(vocab) {}
  Tensor prefill(const Tensor& ids) override {
    ++c_.prefills;
    c_.prefill_lengths.push_back(ids.dim(1));
    std::this_thread::sleep_for(std::chrono::microseconds(200 * ids.dim(1)));
    return Tensor::zeros(DType::F32, {batch_, vocab_});
  }
  Tensor step(const std::vector<int64_t>& tokens) override {
    EXPECT_EQ(int(tokens.size()), batch_);
    ++c_.steps;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return Tensor::zeros(DType::F32, {batch_, vocab_});
  }

 private:
  Calls& c_;
  int batch_, vocab_;
};

class SleepyModel : public LanguageModel {
 public:
  SleepyModel() {
    cfg_.name = "sleepy";
    cfg_.vocab_size = 11;
    cfg_.d_model = 4;
  }
  const ModelConfig& config() const override { return cfg_; }
  std::string describe() const override { return "fake sleep"; }
  ForwardOutput forward(const Tensor&, const ForwardOptions&) override { fail("not used"); }
  std::unique_ptr<Decoder> decoder(int batch) override {
    ++calls.decoders;
    return std::make_unique<SleepyDecoder>(calls, batch, cfg_.vocab_size);
  }
  Calls calls;

 private:
  ModelConfig cfg_;
};

TEST(Latency, SummaryQuantilesInterpolateLikeNumpy) {
  SampleSummary s = summarize({4, 1, 3, 2});
  EXPECT_DOUBLE_EQ(s.median, 2.5);
  EXPECT_DOUBLE_EQ(s.q25, 1.75);  // numpy.percentile([1,2,3,4], 25)
  EXPECT_DOUBLE_EQ(s.q75, 3.25);
  EXPECT_DOUBLE_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.max, 4);
  EXPECT_DOUBLE_EQ(summarize({7}).median, 7);
}

TEST(Latency, TimesPrefillAndDecodeWithWarmupAndRepeats) {
  SleepyModel m;
  LatencyOptions o;
  o.prompt_lengths = {10, 40};
  o.batch = 2;
  o.decode_prompt = 5;
  o.decode_tokens = 4;
  o.warmup = 1;
  o.repeats = 3;
  std::vector<std::string> progress;
  o.progress = [&](const std::string& s) { progress.push_back(s); };
  LatencyResult r = measure_latency(m, o);

  // (warmup + repeats) prefills per length, and the same number of decode runs each with its own prefill.
  EXPECT_EQ(m.calls.prefills, 2 * 4 + 4);
  EXPECT_EQ(m.calls.decoders, 2 * 4 + 4);
  EXPECT_EQ(m.calls.steps, 4 * 4);
  EXPECT_EQ(m.calls.prefill_lengths[0], 10);
  EXPECT_EQ(m.calls.prefill_lengths[4], 40);
  EXPECT_EQ(m.calls.prefill_lengths[8], 5);
  ASSERT_EQ(r.prefill_ms.size(), 2u);
  EXPECT_EQ(r.prefill_ms[0].size(), 3u);
  // 0.2 ms per token: 2 ms and 8 ms, with generous room for a loaded machine.
  EXPECT_GE(r.prefill[0].median, 2.0);
  EXPECT_LT(r.prefill[0].median, 2.0 + 30);
  EXPECT_GE(r.prefill[1].median, 8.0);
  EXPECT_GT(r.prefill[1].median, r.prefill[0].median);
  ASSERT_EQ(r.decode_positions, (std::vector<int64_t>{5, 6, 7, 8}));
  ASSERT_EQ(r.decode_ms.size(), 4u);
  for (const auto& v : r.decode_ms) EXPECT_EQ(v.size(), 3u);
  EXPECT_GE(r.decode_all.median, 2.0);
  EXPECT_LT(r.decode_all.median, 2.0 + 30);
  EXPECT_LE(r.decode_all.q25, r.decode_all.median);
  EXPECT_LE(r.decode_all.median, r.decode_all.q75);
  EXPECT_EQ(r.backend, "fake sleep");
  EXPECT_GT(r.decode_peak_rss, 0);
  EXPECT_EQ(progress.size(), 3u);
  EXPECT_EQ(latency_summary_json(r)["prefill"][1]["length"], 40);
}

TEST(Latency, RejectsBadOptions) {
  SleepyModel m;
  LatencyOptions o;
  o.repeats = 0;
  EXPECT_THROW(measure_latency(m, o), Error);
  o = {};
  o.prompt_lengths = {0};
  EXPECT_THROW(measure_latency(m, o), Error);
  EXPECT_EQ(m.calls.prefills, 0);
}

}  // namespace
}  // namespace bmh

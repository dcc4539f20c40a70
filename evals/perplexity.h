// Perplexity of text with lm-eval's loglikelihood_rolling, as its wikitext task computes it
// (lm_eval/tasks/wikitext/wikitext.yaml + preprocess_wikitext.py, v0.4.9.2):
//   documents   the pages of WikiText (EleutherAI/wikitext_document_level, whose _generate_examples is
//               lm-eval v0.3.0 lm_eval/datasets/wikitext/wikitext.py): a new page starts at a line that, with
//               "= = =" -> "===" and "= =" -> "==" and stripped, starts with "= " and ends with " ="
//   target      wikitext_detokenizer(page); scored with rolling windows of the model's max length
//               (lm_eval/models/huggingface.py loglikelihood_rolling, lm_eval/utils.py)
//   metrics     word_perplexity = exp(-sum(ll) / sum(words)), byte_perplexity = exp(-sum(ll) / sum(bytes)),
//               bits_per_byte = -sum(ll) / sum(bytes) / ln 2, with words = len(re.split(r"\s+", page)) and
//               bytes = len(page.encode()) of the page *before* detokenization; no stderr ("N/A").
// Plain text (format "plain") is one document, not detokenized.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/language_model.h"
#include "evals/eval_engine.h"
#include "evals/requests.h"

namespace bmh::eval {

std::vector<std::string> wikitext_pages(const std::string& text);
std::string wikitext_detokenize(const std::string& page);

struct PerplexityDoc {
  std::string original;   // words and bytes are counted here
  std::string target;     // what is scored
};
// format: "wikitext" (pages + detokenizer) or "plain" (the whole text, as is).
std::vector<PerplexityDoc> perplexity_docs(const std::string& text, const std::string& format);

struct PerplexityResult {
  double word_perplexity = 0, byte_perplexity = 0, bits_per_byte = 0;
  int64_t words = 0, bytes = 0, tokens = 0;
  size_t windows = 0;
  std::vector<double> doc_loglikelihood;   // per document, the sum over its windows
};

PerplexityResult run_perplexity(LanguageModel& model, const Encoder& encode, const std::vector<PerplexityDoc>& docs,
                                int32_t prefix_token, const ScoreOptions& opt);

}  // namespace bmh::eval

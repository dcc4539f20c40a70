#include "evals/perplexity.h"

#include "core/error.h"
#include "evals/metrics.h"
#include "evals/task_python_text.h"

namespace bmh::eval {

std::vector<std::string> wikitext_pages(const std::string& text) {
  std::vector<std::string> pages, ret;
  for (const std::string& line : py_split(text, "\n")) {
    std::string rline = py_strip(py_replace(py_replace(line, "= = =", "==="), "= =", "=="));
    std::string r2 = py_strip(rline);
    bool heading = rline.rfind("= ", 0) == 0 && r2.size() >= 2 && r2.compare(r2.size() - 2, 2, " =") == 0;
    if (heading) {
      std::string page = py_join(ret, "\n");
      if (!py_strip(page).empty()) pages.push_back(page);
      ret.clear();
    }
    ret.push_back(line);
  }
  pages.push_back(py_join(ret, "\n"));  // the last page is yielded unconditionally
  return pages;
}

// re.sub(r"/' [0-9]/", r"/'[0-9]/", s): the replacement is the literal text "/'[0-9]/".
static std::string replace_slash_quote_digit(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s.compare(i, 3, "/' ") == 0 && i + 4 < s.size() && s[i + 3] >= '0' && s[i + 3] <= '9' && s[i + 4] == '/') {
      out += "/'[0-9]/";
      i += 5;
    } else {
      out.push_back(s[i++]);
    }
  }
  return out;
}

// preprocess_wikitext.py wikitext_detokenizer, step by step in its order.
std::string wikitext_detokenize(const std::string& page) {
  std::string s = page;
  s = py_replace(s, "s '", "s'");
  s = replace_slash_quote_digit(s);
  s = py_replace(s, " @-@ ", "-");
  s = py_replace(s, " @,@ ", ",");
  s = py_replace(s, " @.@ ", ".");
  s = py_replace(s, " : ", ": ");
  s = py_replace(s, " ; ", "; ");
  s = py_replace(s, " . ", ". ");
  s = py_replace(s, " ! ", "! ");
  s = py_replace(s, " ? ", "? ");
  s = py_replace(s, " , ", ", ");
  s = py_trim_inside_pairs(s, '(', ')');
  s = py_trim_inside_pairs(s, '[', ']');
  s = py_trim_inside_pairs(s, '{', '}');
  s = py_trim_inside_pairs(s, '"', '"');
  s = py_trim_inside_pairs(s, '\'', '\'');
  s = py_replace(s, "= = = =", "====");
  s = py_replace(s, "= = =", "===");
  s = py_replace(s, "= =", "==");
  s = py_replace(s, " \xc2\xb0 ", "\xc2\xb0");  // chr(176), the degree sign
  s = py_replace(s, " \n", "\n");
  s = py_replace(s, "\n ", "\n");
  s = py_replace(s, " N ", " 1 ");
  s = py_replace(s, " 's", "'s");
  return s;
}

std::vector<PerplexityDoc> perplexity_docs(const std::string& text, const std::string& format) {
  std::vector<PerplexityDoc> docs;
  if (format == "wikitext") {
    for (std::string& p : wikitext_pages(text)) docs.push_back({p, wikitext_detokenize(p)});
  } else if (format == "plain") {
    docs.push_back({text, text});
  } else {
    fail("unknown text format \"", format, "\" (wikitext, plain)");
  }
  return docs;
}

PerplexityResult run_perplexity(LanguageModel& model, const Encoder& encode, const std::vector<PerplexityDoc>& docs,
                                int32_t prefix_token, const ScoreOptions& opt) {
  const int max_length = model.config().max_seq_len;
  std::vector<ScoreRequest> reqs;
  std::vector<size_t> n_windows;
  PerplexityResult r;
  for (const PerplexityDoc& d : docs) {
    std::vector<int32_t> ids = encode(d.target);
    r.tokens += int64_t(ids.size());
    std::vector<TokenizedRequest> w = rolling_windows(ids, prefix_token, max_length);
    n_windows.push_back(w.size());
    for (const TokenizedRequest& t : w) reqs.push_back(to_score_request(t, max_length));
  }
  r.windows = reqs.size();
  std::vector<ScoreResult> scores = score_requests(model, reqs, opt);
  std::vector<std::pair<double, int64_t>> by_word, by_byte;
  size_t next = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    std::vector<double> lls;  // sum(nll[0] for _, nll in request_nlls)
    for (size_t k = 0; k < n_windows[i]; ++k) lls.push_back(scores[next++].logprob);
    double ll = python_sum(lls);
    r.doc_loglikelihood.push_back(ll);
    int64_t words = int64_t(py_count_split_whitespace(docs[i].original));
    int64_t bytes = int64_t(docs[i].original.size());
    r.words += words;
    r.bytes += bytes;
    by_word.emplace_back(ll, words);
    by_byte.emplace_back(ll, bytes);
  }
  r.word_perplexity = weighted_perplexity(by_word);
  r.byte_perplexity = weighted_perplexity(by_byte);
  r.bits_per_byte = bits_per_byte(by_byte);
  return r;
}

}  // namespace bmh::eval

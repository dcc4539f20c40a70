// lm-eval's wikitext task on the bundled WikiText-2 raw test file: page splitting
// (EleutherAI/wikitext_document_level = lm-eval v0.3.0 lm_eval/datasets/wikitext/wikitext.py _generate_examples),
// wikitext_detokenizer and the word/byte counts (lm_eval/tasks/wikitext/preprocess_wikitext.py, v0.4.9.2).
// Expected hashes and counts were printed by CPython 3.12.1 running those two files on data/text/wiki.test.raw.
#include <gtest/gtest.h>

#include "evals/perplexity.h"
#include "evals/task_python_text.h"
#include "evals/task_sha256.h"

using namespace bmh::eval;

TEST(Wikitext, PagesDetokenizerAndCounts) {
  std::string text = read_text_file(std::string(BMH_SOURCE_DIR) + "/data/text/wiki.test.raw");
  std::vector<PerplexityDoc> docs = perplexity_docs(text, "wikitext");
  ASSERT_EQ(docs.size(), 62u);  // wikitext-2-raw-v1 test: 62 pages (dataset_infos.json)
  std::string pages, detok;
  int64_t words = 0, bytes = 0;
  for (const PerplexityDoc& d : docs) {
    pages += d.original + std::string(1, '\0');
    detok += d.target + std::string(1, '\0');
    words += int64_t(py_count_split_whitespace(d.original));
    bytes += int64_t(d.original.size());
  }
  EXPECT_EQ(sha256_hex(pages), "f05c9737489cb4b20eec706aee92a73b6861dcc743bc252ffa64b207d0aa5a03");
  EXPECT_EQ(sha256_hex(detok), "da61ba76b9daa5d5964a4e797206bb65bee7dd401fdbc16a83072f8cb94e08db");
  EXPECT_EQ(words, 241335);
  EXPECT_EQ(bytes, 1290527);
  const std::string head = " = Robert Boulter =\n\nRobert Boulter is an English film, television and theatre actor. He";
  EXPECT_EQ(docs[0].target.substr(0, head.size()), head);
}

TEST(Wikitext, DetokenizerRules) {
  EXPECT_EQ(wikitext_detokenize("a @-@ b @,@ c @.@ d"), "a-b,c.d");
  EXPECT_EQ(wikitext_detokenize("( x y ) [ z ] \" q \""), "(x y) [z] \"q\"");
  EXPECT_EQ(wikitext_detokenize("= = Section = ="), "== Section ==");
  EXPECT_EQ(wikitext_detokenize("the dogs ' toys"), "the dogs' toys");
  EXPECT_EQ(wikitext_detokenize("30 \xc2\xb0 C"), "30\xc2\xb0" "C");
}

TEST(Wikitext, PlainIsOneDocument) {
  std::vector<PerplexityDoc> d = perplexity_docs("a , b\n", "plain");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].target, "a , b\n");
}

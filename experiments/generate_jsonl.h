// The files of `bmh generate --prompts`: a JSONL of requests in, a JSONL of results out.
//   in, one object a line (blank lines skipped):  {"text": "..."} or {"ids": [1, 2, 3]}, optionally
//                                                 "max_new_tokens": N (else the command's --max-new-tokens)
//   out, one line per request in request order:   {"index", "prompt_ids", "generated_ids", "text", "finish_reason"}
// The request index is the 0-based count of non-blank lines before it; errors name the file and 1-based line.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/batched_generate.h"
#include "core/tokenizer.h"

namespace bmh {

// `tokenizer` is called only when a line has "text" (so id-only files need no tokenizer). Checks every line
// (JSON object, exactly one of text/ids, no other keys, ids integers within [0, vocab), at least one token,
// max_new_tokens an integer in [0, 1<<20]) before returning; `vocab` is the model's.
std::vector<GenerateRequest> read_prompts_jsonl(const std::string& path, int default_max_new, int vocab,
                                                const std::function<const Tokenizer&()>& tokenizer);

// One line per request. "text" is the generated ids decoded by `tokenizer` (special tokens skipped), or null when
// there is no tokenizer or an id lies outside its vocabulary.
std::string format_results_jsonl(const std::vector<GenerateRequest>& requests,
                                 const std::vector<GenerateResult>& results, const Tokenizer* tokenizer);

}  // namespace bmh

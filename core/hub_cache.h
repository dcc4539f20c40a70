// Hugging Face Hub ids, offline: `org/name[@revision]` resolves to the snapshot a user already downloaded with
// the Hugging Face tools, in their cache layout (huggingface_hub file_download.py / constants.py):
//   cache = $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub
//   <cache>/models--<org>--<name>/refs/<revision>  holds a commit hash (revision defaults to "main")
//   <cache>/models--<org>--<name>/snapshots/<hash>/ holds the files (symlinks into blobs/)
// A revision that is itself a 40-hex commit hash names snapshots/<hash>/ directly. bmh never downloads.
#pragma once
#include <string>

namespace bmh {

// True for `org/name` or `org/name@revision` (Hub id characters only).
bool looks_like_hub_id(const std::string& s);
// The Hub cache folder the Hugging Face tools use in this environment.
std::string hub_cache_dir();
// `arg` itself when it is an existing directory; else, for a Hub id, its cached snapshot directory; else an error
// naming where it looked and how to download. Anything else is returned unchanged (the loader reports it).
std::string resolve_model_dir(const std::string& arg);

}  // namespace bmh

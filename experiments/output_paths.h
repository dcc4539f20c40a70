// Refuses an output path that is one of the command's inputs, so that `forward --out DIR/model.safetensors`
// cannot overwrite the weights it just read. Every command that writes calls it before it writes anything.
#pragma once
#include <string>
#include <vector>

namespace bmh {

// `option` names the flag in the error ("--out"); `out` is the file or directory written; `inputs` are the
// files and directories read (empty strings are skipped). Refused: out is an input (same path after resolving
// symlinks and "..", or the same inode: hard links), or out lies inside an input directory (a checkpoint
// directory is read-only to bmh).
void check_output_not_input(const std::string& option, const std::string& out, const std::vector<std::string>& inputs);

}  // namespace bmh

// bmh subcommands register themselves from their own files (experiments/cmd_*.cpp):
//   static const bool registered = bmh::register_command(&add_info_command);
// where add_info_command(CLI::App& app) adds the subcommand and its callback.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>

namespace bmh {

using CommandSetup = void (*)(CLI::App& app);
bool register_command(CommandSetup setup);
void add_registered_commands(CLI::App& app);

}  // namespace bmh

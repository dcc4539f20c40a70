// bmh: the BlackMamba harness CLI. Errors are reported here, once: "bmh: error: ..." and a non-zero exit.
#include <cstdio>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "core/error.h"
#include "experiments/command.h"

namespace bmh {

static std::vector<CommandSetup>& registry() {
  static std::vector<CommandSetup> r;
  return r;
}

bool register_command(CommandSetup setup) {
  registry().push_back(setup);
  return true;
}

void add_registered_commands(CLI::App& app) {
  for (auto setup : registry()) setup(app);
}

// The error contract is one line: control characters in a message (a key or path from a hostile file may hold
// newlines) are escaped, and a message is cut at 2000 bytes.
static void print_error(const char* what) {
  std::string line;
  for (const char* p = what; *p && line.size() < 2000; ++p) {
    const unsigned char c = static_cast<unsigned char>(*p);
    if (c < 0x20 || c == 0x7f) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\x%02x", c);
      line += esc;
    } else {
      line += char(c);
    }
  }
  if (line.size() >= 2000) line += "...";
  std::fprintf(stderr, "bmh: error: %s\n", line.c_str());
}

}  // namespace bmh

int main(int argc, char** argv) {
  CLI::App app{"bmh: BlackMamba / Mamba / transformer research harness (CPU reference and CUDA backend)"};
  app.require_subcommand(0, 1);
  bmh::add_registered_commands(app);
  try {
    app.parse(argc, argv);
    if (app.get_subcommands().empty()) {
      std::fputs(app.help().c_str(), stdout);
      return 0;
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const bmh::Error& e) {
    bmh::print_error(e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    bmh::print_error("out of host memory");
    return 1;
  } catch (const std::exception& e) {
    bmh::print_error(e.what());
    return 1;
  }
  return 0;
}

// bmh: the BlackMamba harness CLI. Errors are reported here, once: "bmh: error: ..." and a non-zero exit.
#include <cstdio>
#include <exception>
#include <new>
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
    std::fprintf(stderr, "bmh: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "bmh: error: out of host memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bmh: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

// bmh: the BlackMamba harness CLI. Errors are reported here, once: "bmh: error: ..." and a non-zero exit.
#include <cstdio>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "core/error.h"
#include "evals/distributed.h"
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
  if (dist::size() > 1) {
    std::fprintf(stderr, "bmh: error: rank %d of %d: %s\n", dist::rank(), dist::size(), line.c_str());
  } else {
    std::fprintf(stderr, "bmh: error: %s\n", line.c_str());
  }
}

// Under `mpirun -np N` (N > 1) only these commands shard their work over the ranks; any other would run N times
// and write the same files N times, so it is refused before it starts.
static void refuse_unsharded_under_mpi(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    const std::string name = sub->get_name();
    if (name == "eval" || name == "perplexity" || name == "routing") continue;
    sub->preparse_callback([name](size_t) {
      if (dist::size() > 1)
        fail("bmh ", name, " does not shard over MPI ranks (", dist::size(),
             " here); under mpirun only eval, perplexity and routing do: run it as one process");
    });
  }
}

}  // namespace bmh

// Ends the process: every rank of a multi-rank run is ended too, since the others would wait on this one forever.
static int finish(int code) {
  if (code != 0 && bmh::dist::size() > 1) bmh::dist::abort_all(code);
  bmh::dist::finalize();
  return code;
}

int main(int argc, char** argv) {
  bmh::dist::init(&argc, &argv);
  CLI::App app{"bmh: BlackMamba / Mamba / transformer research harness (CPU reference and CUDA backend)"};
  app.require_subcommand(0, 1);
  bmh::add_registered_commands(app);
  bmh::refuse_unsharded_under_mpi(app);
  try {
    app.parse(argc, argv);
    if (app.get_subcommands().empty()) {
      if (bmh::dist::is_root()) std::fputs(app.help().c_str(), stdout);
      return finish(0);
    }
  } catch (const CLI::ParseError& e) {
    return finish(app.exit(e));
  } catch (const bmh::Error& e) {
    bmh::print_error(e.what());
    return finish(1);
  } catch (const std::bad_alloc&) {
    bmh::print_error("out of host memory");
    return finish(1);
  } catch (const std::exception& e) {
    bmh::print_error(e.what());
    return finish(1);
  }
  return finish(0);
}

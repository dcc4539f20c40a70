#include "evals/distributed.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <numeric>

#include "core/error.h"

#ifdef BMH_HAVE_MPI
// The C API only: OpenMPI's deprecated C++ bindings (pulled in by default) warn under -Wextra.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace bmh::dist {

namespace {
int g_rank = 0, g_size = 1, g_local_rank = 0;
}  // namespace

bool built_with_mpi() {
#ifdef BMH_HAVE_MPI
  return true;
#else
  return false;
#endif
}

int rank() { return g_rank; }
int size() { return g_size; }
int local_rank() { return g_local_rank; }

std::vector<int> assign_by_tokens(const std::vector<int64_t>& cost, int ranks) {
  std::vector<int> owner(cost.size(), 0);
  if (ranks <= 1) return owner;
  std::vector<size_t> order(cost.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return cost[a] > cost[b]; });
  std::vector<int64_t> load(size_t(ranks), 0);
  for (size_t i : order) {
    int best = int(std::min_element(load.begin(), load.end()) - load.begin());  // first minimum: lowest rank
    owner[i] = best;
    load[size_t(best)] += cost[i];
  }
  return owner;
}

#ifdef BMH_HAVE_MPI

namespace {
bool g_active = false;   // MPI_Init was called
// Results travel under their own tag, so they can never be mistaken for anything a collective sends.
constexpr int kResultTag = 16;
std::deque<std::pair<MPI_Request, std::vector<uint8_t>>> g_sends;  // buffers live until their send completes

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  fail("MPI ", what, " failed: ", std::string(msg, size_t(len)));
}

int int_count(size_t n, const char* what) {
  if (n > size_t(INT_MAX)) fail("MPI ", what, ": ", n, " elements exceed one message");
  return int(n);
}
}  // namespace

void init(int* argc, char*** argv) {
  if (!launched_by_mpi()) return;
  check(MPI_Init(argc, argv), "MPI_Init");
  g_active = true;
  // Errors come back as codes (check() turns them into one bmh error line) instead of MPI's own abort.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  MPI_Comm node;
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node),
        "MPI_Comm_split_type");
  MPI_Comm_rank(node, &g_local_rank);
  MPI_Comm_free(&node);
}

void finalize() {
  if (!g_active) return;
  finish_sends();
  MPI_Finalize();
  g_active = false;
}

void abort_all(int code) {
  if (g_active && g_size > 1) MPI_Abort(MPI_COMM_WORLD, code);
  finalize();
  std::exit(code);
}

void barrier() {
  if (g_size > 1) check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
}

void broadcast(std::vector<uint8_t>& bytes) {
  if (g_size == 1) return;
  uint64_t n = bytes.size();
  check(MPI_Bcast(&n, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD), "MPI_Bcast");
  bytes.resize(size_t(n));
  check(MPI_Bcast(bytes.data(), int_count(bytes.size(), "MPI_Bcast"), MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast");
}

void allreduce_sum(std::vector<int64_t>& v) {
  if (g_size == 1 || v.empty()) return;
  check(MPI_Allreduce(MPI_IN_PLACE, v.data(), int_count(v.size(), "MPI_Allreduce"), MPI_INT64_T, MPI_SUM,
                      MPI_COMM_WORLD), "MPI_Allreduce");
}

void allreduce_max(std::vector<double>& v) {
  if (g_size == 1 || v.empty()) return;
  check(MPI_Allreduce(MPI_IN_PLACE, v.data(), int_count(v.size(), "MPI_Allreduce"), MPI_DOUBLE, MPI_MAX,
                      MPI_COMM_WORLD), "MPI_Allreduce");
}

void send_to_root(std::vector<uint8_t> msg) {
  if (g_size == 1) fail("send_to_root: one process has no other rank");
  g_sends.emplace_back(MPI_REQUEST_NULL, std::move(msg));
  auto& [req, buf] = g_sends.back();
  check(MPI_Isend(buf.data(), int_count(buf.size(), "MPI_Isend"), MPI_BYTE, 0, kResultTag, MPI_COMM_WORLD, &req),
        "MPI_Isend");
  // Drop the buffers whose sends have completed, oldest first.
  while (!g_sends.empty()) {
    int done = 0;
    check(MPI_Test(&g_sends.front().first, &done, MPI_STATUS_IGNORE), "MPI_Test");
    if (!done) break;
    g_sends.pop_front();
  }
}

void finish_sends() {
  for (auto& [req, buf] : g_sends) check(MPI_Wait(&req, MPI_STATUS_IGNORE), "MPI_Wait");
  g_sends.clear();
}

static void receive_probed(MPI_Status& st, std::vector<uint8_t>& msg) {
  int n = 0;
  MPI_Get_count(&st, MPI_BYTE, &n);
  msg.resize(size_t(n));
  check(MPI_Recv(msg.data(), n, MPI_BYTE, st.MPI_SOURCE, kResultTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "MPI_Recv");
}

bool poll_from_any(std::vector<uint8_t>& msg) {
  if (g_size == 1) return false;
  int flag = 0;
  MPI_Status st;
  check(MPI_Iprobe(MPI_ANY_SOURCE, kResultTag, MPI_COMM_WORLD, &flag, &st), "MPI_Iprobe");
  if (!flag) return false;
  receive_probed(st, msg);
  return true;
}

void receive_from_any(std::vector<uint8_t>& msg) {
  if (g_size == 1) fail("receive_from_any: one process has no other rank");
  MPI_Status st;
  check(MPI_Probe(MPI_ANY_SOURCE, kResultTag, MPI_COMM_WORLD, &st), "MPI_Probe");
  receive_probed(st, msg);
}

#else  // one process

// Started by mpirun/srun with several ranks, a build without MPI would run the whole command in each of them
// (writing the same files at once): refuse instead.
void init(int*, char***) {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
    const char* n = std::getenv(v);
    if (n && std::atoi(n) > 1) {
      std::fprintf(stderr, "bmh: error: started as one of %s MPI ranks (%s) but built without MPI: install "
                           "libopenmpi-dev and rebuild (CMake finds it), or run one process\n", n, v);
      std::exit(1);
    }
  }
}
void finalize() {}
void abort_all(int code) { std::exit(code); }
void barrier() {}
void broadcast(std::vector<uint8_t>&) {}
void allreduce_sum(std::vector<int64_t>&) {}
void allreduce_max(std::vector<double>&) {}
void send_to_root(std::vector<uint8_t>) { fail("send_to_root: one process has no other rank"); }
void finish_sends() {}
bool poll_from_any(std::vector<uint8_t>&) { return false; }
void receive_from_any(std::vector<uint8_t>&) { fail("receive_from_any: one process has no other rank"); }

#endif

}  // namespace bmh::dist

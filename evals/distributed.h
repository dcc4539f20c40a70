// Data parallelism over MPI ranks (`mpirun -np N bmh eval|perplexity|routing ...`, or `srun`): the only file that
// knows MPI. Without MPI in the build, or when bmh was not started by an MPI launcher, it is one process of rank 0
// and every call below is a no-op or a copy, so callers need no #ifdef.
//
// MPI_Init runs only when a launcher's environment is present (OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_RANK/PMI_SIZE):
// a plain `bmh ...` never starts MPI (an MPI singleton costs start-up time and may fail where no network is).
//
// Scoring's protocol (evals/eval_engine.cpp): every rank builds the same plan, takes the calls assign_by_tokens
// gives it, streams its results to rank 0 as each call finishes (send_to_root); rank 0 writes them to the journal
// as they arrive and broadcasts the complete set at the end, so every rank computes the same metrics and rank 0
// alone writes files.
#pragma once
#include <cstdint>
#include <vector>

namespace bmh::dist {

// Called once by main() before parsing; init reads the launcher's environment.
void init(int* argc, char*** argv);
void finalize();
// Ends every rank (one failing rank would leave the others blocked in a collective).
[[noreturn]] void abort_all(int code);

bool built_with_mpi();
int rank();
int size();
int local_rank();   // rank among the processes of this node (picks the GPU)
inline bool is_root() { return rank() == 0; }

void barrier();
// Root's bytes replace every other rank's.
void broadcast(std::vector<uint8_t>& bytes);
void allreduce_sum(std::vector<int64_t>& v);
void allreduce_max(std::vector<double>& v);

// Which rank runs each work item: longest first to the least-loaded rank (ties: the lower rank), the LPT rule.
// Same input, same answer on every rank. `cost` in tokens.
std::vector<int> assign_by_tokens(const std::vector<int64_t>& cost, int ranks);

// Results streamed to rank 0: sends are buffered and non-blocking (finish_sends waits for them all).
void send_to_root(std::vector<uint8_t> msg);
void finish_sends();
// Rank 0: one message from any rank, if one has arrived (poll) or waiting for it (receive).
bool poll_from_any(std::vector<uint8_t>& msg);
void receive_from_any(std::vector<uint8_t>& msg);

}  // namespace bmh::dist

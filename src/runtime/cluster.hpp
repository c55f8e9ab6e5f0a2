#pragma once
// The MPI job this process belongs to, and the spreading of independent work units over its ranks.
//
// Rank 0, the coordinator, hands out units and receives every result; the other ranks, the
// workers, compute the units they are given and send back each result as bytes. Results travel
// over MPI, not through a shared directory: only rank 0 reads and writes the output, so nothing
// relies on a shared file system's semantics (flock and rename over NFS are not dependable), and
// no host but rank 0's needs to see the output at all.
//
// Without an MPI launcher in the environment (OpenMPI's OMPI_COMM_WORLD_SIZE, or PMI_SIZE /
// PMIX_RANK of other launchers) MPI is never initialised: a singleton MPI_Init costs about 1 s on
// the reference machine and starts a helper daemon. The job is then rank 0 of 1, and run_units()
// computes every unit in order on the calling thread, as a program without MPI would.
//
// Protocol (rank 0 <-> each worker, MPI_COMM_WORLD, one tag per direction, the first byte of a
// message its kind):
//   0 -> w: start(payload) | assign(unit) | exit(code)
//   w -> 0: ready | result(unit, bytes) | failed(message)
// A worker waits for start or exit; after start it says ready and then alternates assign /
// result until rank 0 says exit, with the job's exit code, which the worker then exits with.

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace iclbench::runtime {

class Cluster {
 public:
  // Initialises MPI (MPI_Init_thread, MPI_THREAD_FUNNELED: only this thread calls MPI) iff a
  // launcher started the process. Throws std::runtime_error if MPI cannot start.
  Cluster(int& argc, char**& argv);
  ~Cluster();  // MPI_Finalize, if initialised
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool coordinator() const { return rank_ == 0; }
  // Ranks of this job on this host (an MPI_COMM_TYPE_SHARED split); 1 without a launcher.
  int local_size() const { return local_size_; }
  // The TBB threads this rank should use when the user asked for all CPUs: its share of the host,
  // min(the CPUs it may run on, the host's CPUs / local_size()), so that ranks on one host split
  // its cores whether or not the launcher bound them; 0 (= all) when the job is one process.
  int thread_share() const;

  // All ranks, at the point where every rank takes part in distributed work (same argv, so all
  // reach it or none): from here on the coordinator's finish() must tell the workers to exit.
  void enlist() { enlisted_ = true; }
  bool enlisted() const { return enlisted_; }

  // Worker: waits for rank 0's start and returns its payload, or nothing if rank 0 ended first
  // (an error before the work began); then exit_code() holds rank 0's exit code.
  std::optional<std::string> wait_start();
  // Worker: after a start, computes every unit rank 0 assigns with `compute` (unit index ->
  // result bytes) until rank 0 says exit. A compute that throws is reported to rank 0 as this
  // rank's failure. Returns rank 0's exit code.
  int serve(const std::function<std::string(std::size_t unit)>& compute);
  // Worker: rank 0's exit code, once wait_start() or serve() returned it.
  std::optional<int> exit_code() const { return exit_code_; }

  // Coordinator: computes the units 0 .. costs.size()-1 over all ranks, rank 0 included (on a
  // second thread, while this one hands out units and receives results). Units go out in order
  // of decreasing cost, each to the next rank that is free: list scheduling in LPT order, which
  // balances the load within 4/3 of the optimum when the costs are exact and adapts when they
  // are not. `on_result(unit, bytes)` runs on this thread, once per unit, as results arrive (in
  // any order). `payload` goes to every worker's wait_start() first. With one rank: every unit
  // in index order on this thread, no thread started. Throws std::runtime_error naming the rank
  // when a worker reports a failure; rethrows rank 0's own.
  void run_units(const std::string& payload, const std::vector<double>& costs,
                 const std::function<std::string(std::size_t unit)>& compute,
                 const std::function<void(std::size_t unit, std::string bytes)>& on_result);

  // Coordinator, at the end of its command: tells every enlisted worker the job's exit code. A
  // worker still computing a unit (rank 0 failed mid-run) cannot be told and would block on its
  // result: then the whole job is ended with MPI_Abort(exit_code).
  void finish(int exit_code);

 private:
  bool initialised_ = false;
  int rank_ = 0;
  int size_ = 1;
  int local_size_ = 1;
  bool enlisted_ = false;
  std::vector<bool> busy_;  // coordinator: worker w has a unit assigned (index w)
  std::optional<int> exit_code_;
};

// Whether an MPI launcher started this process (its environment variables).
bool launched_by_mpi();

}  // namespace iclbench::runtime

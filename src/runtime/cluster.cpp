#include "runtime/cluster.hpp"

#include <mpi.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <thread>

namespace iclbench::runtime {
namespace {

constexpr int kToWorker = 1;
constexpr int kToCoordinator = 2;
// Message kinds, the first byte of every message.
constexpr char kStart = 'S', kAssign = 'A', kExit = 'X', kReady = 'R', kResult = 'D', kFailed = 'F';

// How long a waiting rank sleeps between polls. OpenMPI's blocking receive spins a core, which
// on a host whose cores the ranks share would take them from the ranks that compute; a unit
// takes seconds, so 2 ms of latency costs nothing.
constexpr auto kPollInterval = std::chrono::milliseconds(2);

void check(int code, const char* call) {
  if (code != MPI_SUCCESS) throw std::runtime_error(std::string("MPI: ") + call + " failed");
}

void send(const std::string& message, int dest, int tag) {
  // A result can exceed what an int counts only past 2 GB; a point is megabytes.
  check(MPI_Send(message.data(), static_cast<int>(message.size()), MPI_CHAR, dest, tag, MPI_COMM_WORLD), "MPI_Send");
}

// Receives the next message with `tag` from `source` (or any source), if one has arrived.
std::optional<std::string> try_receive(int source, int tag, int* from) {
  int arrived = 0;
  MPI_Status status;
  check(MPI_Iprobe(source, tag, MPI_COMM_WORLD, &arrived, &status), "MPI_Iprobe");
  if (!arrived) return std::nullopt;
  int count = 0;
  check(MPI_Get_count(&status, MPI_CHAR, &count), "MPI_Get_count");
  std::string message(static_cast<std::size_t>(count), '\0');
  check(MPI_Recv(message.data(), count, MPI_CHAR, status.MPI_SOURCE, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
        "MPI_Recv");
  if (message.empty()) throw std::runtime_error("MPI: empty message");
  if (from) *from = status.MPI_SOURCE;
  return message;
}

std::string receive_gently(int source, int tag) {
  for (;;) {
    if (auto message = try_receive(source, tag, nullptr)) return *message;
    std::this_thread::sleep_for(kPollInterval);
  }
}

std::string encode_unit(char kind, std::size_t unit, const std::string& bytes = {}) {
  std::string message(1 + sizeof(std::uint64_t), kind);
  const auto value = static_cast<std::uint64_t>(unit);
  std::memcpy(message.data() + 1, &value, sizeof value);
  return message + bytes;
}

std::size_t decode_unit(const std::string& message) {
  if (message.size() < 1 + sizeof(std::uint64_t)) throw std::runtime_error("MPI: short message");
  std::uint64_t value = 0;
  std::memcpy(&value, message.data() + 1, sizeof value);
  return static_cast<std::size_t>(value);
}

int affinity_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

}  // namespace

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

Cluster::Cluster(int& argc, char**& argv) {
  if (!launched_by_mpi()) return;
  int provided = 0;
  check(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  initialised_ = true;
  if (provided < MPI_THREAD_FUNNELED) throw std::runtime_error("MPI: no MPI_THREAD_FUNNELED support");
  check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
  check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
  MPI_Comm host;
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &host), "MPI_Comm_split_type");
  check(MPI_Comm_size(host, &local_size_), "MPI_Comm_size");
  MPI_Comm_free(&host);
  busy_.assign(static_cast<std::size_t>(size_), false);
}

Cluster::~Cluster() {
  if (initialised_) MPI_Finalize();
}

int Cluster::thread_share() const {
  if (size_ == 1) return 0;
  const int host = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  return std::max(1, std::min(affinity_cpus(), host / local_size_));
}

std::optional<std::string> Cluster::wait_start() {
  const std::string message = receive_gently(0, kToWorker);
  if (message[0] == kStart) return message.substr(1);
  if (message[0] != kExit) throw std::runtime_error("MPI: unexpected message before start");
  exit_code_ = static_cast<int>(decode_unit(message));
  return std::nullopt;
}

int Cluster::serve(const std::function<std::string(std::size_t)>& compute) {
  // A test hook (tests/python/mpi_bounds_test.py): after sending that many results, this worker
  // kills itself when it is given its next unit, as a crashed or OOM-killed rank dies with work
  // in hand, to check what the job does then. Rank 0 assigns a unit only after it has saved the
  // worker's previous result, so those results are on disk.
  const char* die_after = std::getenv("ICLBENCH_TEST_WORKER_DIES_AFTER");
  const long results_before_death = die_after ? std::strtol(die_after, nullptr, 10) : -1;
  long results = 0;
  send(std::string(1, kReady), 0, kToCoordinator);
  for (;;) {
    const std::string message = receive_gently(0, kToWorker);
    if (message[0] == kExit) {
      exit_code_ = static_cast<int>(decode_unit(message));
      return *exit_code_;
    }
    if (message[0] != kAssign) throw std::runtime_error("MPI: unexpected message from rank 0");
    if (results == results_before_death) std::raise(SIGKILL);
    const std::size_t unit = decode_unit(message);
    std::string reply;
    try {
      reply = encode_unit(kResult, unit, compute(unit));
    } catch (const std::invalid_argument& error) {  // the rank's input: exit 2, as in one process
      reply = std::string(1, kFailed) + '2' + error.what();
    } catch (const std::exception& error) {
      reply = std::string(1, kFailed) + '1' + error.what();
    }
    send(reply, 0, kToCoordinator);
    ++results;
  }
}

void Cluster::run_units(const std::string& payload, const std::vector<double>& costs,
                        const std::function<std::string(std::size_t)>& compute,
                        const std::function<void(std::size_t, std::string)>& on_result) {
  if (size_ == 1) {
    for (std::size_t unit = 0; unit < costs.size(); ++unit) on_result(unit, compute(unit));
    return;
  }
  std::deque<std::size_t> queue(costs.size());
  std::iota(queue.begin(), queue.end(), std::size_t{0});
  std::stable_sort(queue.begin(), queue.end(), [&](std::size_t a, std::size_t b) { return costs[a] > costs[b]; });
  for (int worker = 1; worker < size_; ++worker) send(kStart + payload, worker, kToWorker);

  // Rank 0's own share: a thread that takes units from the same queue (TBB runs inside it as on
  // any thread); its results come back through `local` so that only this thread calls MPI and
  // on_result.
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::pair<std::size_t, std::string>> local;
  std::exception_ptr local_error;
  bool stop = false;
  auto next_unit = [&]() -> std::optional<std::size_t> {
    std::lock_guard lock(mutex);
    if (stop || queue.empty()) return std::nullopt;
    const std::size_t unit = queue.front();
    queue.pop_front();
    return unit;
  };
  // Under the dying-worker test hook (see serve) rank 0 computes nothing itself, so that every
  // unit goes to a worker: otherwise, on a loaded machine, rank 0 could take all the remaining
  // units while rank 1 computes its first, rank 1 would never be given the unit it dies on, and
  // the test would check nothing.
  const bool workers_only = std::getenv("ICLBENCH_TEST_WORKER_DIES_AFTER") != nullptr;
  std::thread own([&] {
    try {
      while (const auto unit = workers_only ? std::nullopt : next_unit()) {
        std::string bytes = compute(*unit);
        std::lock_guard lock(mutex);
        local.emplace_back(*unit, std::move(bytes));
        wake.notify_one();
      }
    } catch (...) {
      std::lock_guard lock(mutex);
      local_error = std::current_exception();
      wake.notify_one();
    }
  });
  auto stop_own = [&] {
    {
      std::lock_guard lock(mutex);
      stop = true;
    }
    own.join();
  };

  try {
    std::size_t received = 0;
    while (received < costs.size()) {
      bool progressed = false;
      int from = 0;
      if (auto message = try_receive(MPI_ANY_SOURCE, kToCoordinator, &from)) {
        progressed = true;
        const auto worker = static_cast<std::size_t>(from);
        if ((*message)[0] == kFailed) {
          busy_[worker] = false;
          const std::string what = "rank " + std::to_string(from) + ": " + message->substr(2);
          if ((*message)[1] == '2') throw std::invalid_argument(what);
          throw std::runtime_error(what);
        }
        if ((*message)[0] == kResult) {
          busy_[worker] = false;
          const std::size_t unit = decode_unit(*message);
          on_result(unit, message->substr(1 + sizeof(std::uint64_t)));
          ++received;
        } else if ((*message)[0] != kReady) {
          throw std::runtime_error("MPI: unexpected message from rank " + std::to_string(from));
        }
        if (const auto unit = next_unit()) {
          busy_[worker] = true;
          send(encode_unit(kAssign, *unit), from, kToWorker);
        }
      }
      std::unique_lock lock(mutex);
      if (local_error) std::rethrow_exception(local_error);
      if (!local.empty()) {
        auto [unit, bytes] = std::move(local.front());
        local.pop_front();
        lock.unlock();
        on_result(unit, std::move(bytes));
        ++received;
        progressed = true;
      } else if (!progressed) {
        wake.wait_for(lock, kPollInterval);
      }
    }
  } catch (...) {
    stop_own();
    throw;
  }
  stop_own();
}

void Cluster::finish(int exit_code) {
  if (!initialised_ || rank_ != 0 || !enlisted_) return;
  if (std::any_of(busy_.begin(), busy_.end(), [](bool busy) { return busy; })) {
    MPI_Abort(MPI_COMM_WORLD, exit_code);
  }
  for (int worker = 1; worker < size_; ++worker) {
    send(encode_unit(kExit, static_cast<std::size_t>(exit_code)), worker, kToWorker);
  }
}

}  // namespace iclbench::runtime

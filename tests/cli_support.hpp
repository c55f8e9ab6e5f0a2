#pragma once
// Running the `iclbench` binary from end-to-end tests: exit code, stdout, stderr, peak memory;
// and reading the CSV files it writes.

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace cli_support {

namespace fs = std::filesystem;

struct Result {
  int exit_code;  // the exit status, or 128 + the signal that ended the process (as a shell)
  std::string out;
  std::string err;
  double peak_rss_bytes = 0;  // of the child process (getrusage's ru_maxrss)
};

// What the child runs with besides its arguments.
struct RunOptions {
  std::vector<std::pair<std::string, std::string>> environment;  // set in the child only
  fs::path working_directory;                                     // empty: the test's
  long file_size_limit = 0;  // RLIMIT_FSIZE in bytes (writes past it fail with EFBIG); 0: none
  fs::path standard_output;  // the child's stdout (e.g. /dev/full); empty: captured in Result::out
};

inline std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

inline fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(ICLBENCH_TEST_TMPDIR) / ("cli_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Runs iclbench with `args` (no shell: arguments are passed as they are).
inline Result run(const std::vector<std::string>& args, const RunOptions& options = {}) {
  static int counter = 0;
  const fs::path dir = fs::path(ICLBENCH_TEST_TMPDIR);
  const fs::path out = dir / ("stdout." + std::to_string(::getpid()) + "." + std::to_string(counter));
  const fs::path err = dir / ("stderr." + std::to_string(::getpid()) + "." + std::to_string(counter++));
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> argv;
    std::string binary = ICLBENCH_BINARY;
    argv.push_back(binary.data());
    std::vector<std::string> copies = args;
    for (auto& arg : copies) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const fs::path out_target = options.standard_output.empty() ? out : options.standard_output;
    if (!std::freopen(out_target.c_str(), "w", stdout) || !std::freopen(err.c_str(), "w", stderr)) _exit(127);
    for (const auto& [name, value] : options.environment) ::setenv(name.c_str(), value.c_str(), 1);
    if (!options.working_directory.empty() && ::chdir(options.working_directory.c_str()) != 0) _exit(127);
    if (options.file_size_limit > 0) {
      // A full disk, as far as the writer can tell: write() fails with EFBIG. SIGXFSZ keeps its
      // default action (end the process) here: iclbench must ignore it itself, as under `ulimit -f`.
      const struct rlimit limit {static_cast<rlim_t>(options.file_size_limit), static_cast<rlim_t>(options.file_size_limit)};
      ::setrlimit(RLIMIT_FSIZE, &limit);
    }
    ::execv(binary.c_str(), argv.data());
    _exit(127);
  }
  // A watchdog instead of a blocking wait: a child that hangs (seen once in CI's ASan stage,
  // not reproduced) is stopped with SIGSEGV, so that a sanitizer prints where it was, and the
  // failing arguments are named here rather than left to ctest's 600 s timeout of the whole test.
  const char* limit_text = std::getenv("ICLBENCH_TEST_CHILD_SECONDS");
  const int limit_seconds = limit_text != nullptr ? std::atoi(limit_text) : 300;
  int status = 0;
  struct rusage usage {};
  for (int waited_ms = 0;; waited_ms += 20) {
    const pid_t done = ::wait4(pid, &status, WNOHANG, &usage);
    if (done == pid || (done < 0 && errno != EINTR)) break;
    if (waited_ms == limit_seconds * 1000 || waited_ms == (limit_seconds + 20) * 1000) {
      std::string line;
      for (const auto& arg : args) line += " " + arg;
      std::fprintf(stderr, "cli_support::run: iclbench%s ran over %d s; stopping it\n", line.c_str(), limit_seconds);
      ::kill(pid, waited_ms == limit_seconds * 1000 ? SIGSEGV : SIGKILL);
    }
    ::usleep(20'000);
  }
  Result result{WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), read_all(out),
                read_all(err), static_cast<double>(usage.ru_maxrss) * 1024.0};
  fs::remove(out);
  fs::remove(err);
  return result;
}

inline int count_lines(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

// The fields of one CSV record as RFC 4180 reads them ("" inside a quoted field is one quote).
inline std::vector<std::string> csv_record(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted && c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
      fields.back() += '"';
      ++i;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (c == ',' && !quoted) {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  return fields;
}

}  // namespace cli_support

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "cli/commands.hpp"
#include "io/atomic_file.hpp"

namespace iclbench::cli {
namespace {

std::FILE* g_output = nullptr;

}  // namespace

void claim_stdout() {
  std::fflush(stdout);
  const int own = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
  if (own < 0) return;  // no stdout to claim (closed): keep printing to it, as before
  std::FILE* stream = ::fdopen(own, "w");
  if (stream == nullptr) {
    ::close(own);
    return;
  }
  ::dup2(STDERR_FILENO, STDOUT_FILENO);
  g_output = stream;
}

std::FILE* output() { return g_output != nullptr ? g_output : stdout; }

void flush_output(const std::string& consequence) {
  if (std::fflush(output()) != 0 || std::ferror(output()) != 0) {
    throw io::IoError("cannot write to standard output" + consequence);
  }
}

}  // namespace iclbench::cli

#include "io/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

extern char** environ;

namespace iclbench::io {
namespace {

std::atomic<pid_t> g_running_child{0};

}  // namespace

int running_child_pid() noexcept { return g_running_child.load(); }

ChildStatus run_child(const std::vector<std::string>& argv) {
  ChildStatus status;
  if (argv.empty()) return status;
  std::vector<char*> arguments;
  arguments.reserve(argv.size() + 1);
  for (const std::string& argument : argv) arguments.push_back(const_cast<char*>(argument.c_str()));
  arguments.push_back(nullptr);

  // fork + exec rather than posix_spawn, for one step posix_spawn cannot take: the child asks the
  // kernel for SIGKILL when iclbench dies (PR_SET_PDEATHSIG), so a SIGKILL of iclbench, which no
  // handler sees, does not leave the plot script running on its own. Between fork and exec the
  // child makes only async-signal-safe calls (iclbench has TBB and OpenMP threads). A pipe that
  // exec closes carries a failed start's errno back.
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    status.start_error = errno;
    return status;
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    status.start_error = errno;
    ::close(report[0]);
    ::close(report[1]);
    return status;
  }
  if (pid == 0) {
    ::close(report[0]);
    auto fail = [&](int err) {
      const ssize_t ignored = ::write(report[1], &err, sizeof err);
      (void)ignored;
      ::_exit(127);
    };
    // The death signal is tied to the thread that forked: run_child is called from the main
    // thread, which lives as long as iclbench. If iclbench died before the prctl, the parent is
    // already another process: end at once.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(errno);
    if (::getppid() != parent) ::_exit(128 + SIGKILL);
    // The child starts with default signal dispositions and an empty mask, not iclbench's
    // cleanup handlers; stdin is /dev/null; its stdout is iclbench's stderr.
    struct sigaction defaults {};
    defaults.sa_handler = SIG_DFL;
    sigemptyset(&defaults.sa_mask);
    for (int signal_number : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGXFSZ}) ::sigaction(signal_number, &defaults, nullptr);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // only the dup2 copy survives exec
    if (null_fd < 0 || ::dup2(null_fd, STDIN_FILENO) < 0 || ::dup2(STDERR_FILENO, STDOUT_FILENO) < 0) fail(errno);
    ::execve(arguments[0], arguments.data(), environ);
    fail(errno);
  }
  ::close(report[1]);
  int child_error = 0;
  ssize_t got;
  while ((got = ::read(report[0], &child_error, sizeof child_error)) < 0 && errno == EINTR) {
  }
  ::close(report[0]);
  if (got == static_cast<ssize_t>(sizeof child_error)) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    status.start_error = child_error;
    return status;
  }
  status.started = true;
  g_running_child.store(pid);
  int wait_status = 0;
  while (::waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
  }
  g_running_child.store(0);
  if (WIFEXITED(wait_status)) {
    status.exited = true;
    status.exit_code = WEXITSTATUS(wait_status);
    return status;
  }
  status.signal = WIFSIGNALED(wait_status) ? WTERMSIG(wait_status) : 0;
  if (status.signal == SIGINT || status.signal == SIGTERM || status.signal == SIGHUP) {
    ::raise(status.signal);  // the cleanup handler removes temporary files and re-raises
  }
  return status;
}

}  // namespace iclbench::io

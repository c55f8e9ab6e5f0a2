#include "io/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
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

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
  // The child starts with default signal dispositions, not iclbench's cleanup handlers.
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  // SIGXFSZ too: iclbench ignores it (a write past `ulimit -f` fails with EFBIG), and an ignored
  // signal stays ignored across exec. The mask is emptied as well.
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int signal_number : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGXFSZ}) sigaddset(&defaults, signal_number);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  pid_t pid = 0;
  const int err = ::posix_spawn(&pid, arguments[0], &actions, &attributes, arguments.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (err != 0) {
    status.start_error = err;
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

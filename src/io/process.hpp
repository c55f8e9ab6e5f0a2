#pragma once
// Child processes without a shell.
//
// A child is started with posix_spawn from an argument vector: no shell ever parses a path or any
// other user input (a directory named "x'; touch PWNED; echo '" is one argument like any other).
// posix_spawn cannot make a child die with its parent, so a child that must not outlive a
// SIGKILLed iclbench asks the kernel for that itself, first thing (PR_SET_PDEATHSIG), and checks
// that its parent is still the pid iclbench passed it (scripts/plot_bounds.py does).
// While it runs, SIGINT/SIGTERM/SIGHUP delivered to iclbench alone are passed on to it (the
// handlers of install_signal_cleanup()), and a child that an interrupt ended makes iclbench end
// by the same signal (exit status 130 for SIGINT in a shell), so Ctrl-C is never swallowed.

#include <string>
#include <vector>

namespace iclbench::io {

// How a child ended. `started` is false when it could not be started (no such program), with
// `start_error` the errno of posix_spawn.
struct ChildStatus {
  bool started = false;
  int start_error = 0;
  bool exited = false;  // exited normally with `exit_code`; otherwise killed by `signal`
  int exit_code = 0;
  int signal = 0;
};

// Runs argv[0] (a path, not searched in PATH) with arguments argv[1..] and waits for it. The
// child's standard output goes to iclbench's standard error, so that nothing a helper prints can
// mix with iclbench's own (machine-readable) standard output; stdin is /dev/null. If the child
// was ended by SIGINT, SIGTERM or SIGHUP, iclbench re-raises that signal on itself (temporary
// files are removed first), so this returns only for a child that was not interrupted.
ChildStatus run_child(const std::vector<std::string>& argv);

// The pid of the child run_child() is waiting for, or 0; read by the signal handlers.
int running_child_pid() noexcept;

}  // namespace iclbench::io

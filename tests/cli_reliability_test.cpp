// End-to-end tests of the failures of issue 15 (no shell, non-regular inputs, user errors as
// exit 2, strict numbers, the one-line rule, all-or-nothing outputs, owned output directories,
// validated resume), each class with the case that was found and at least one sibling.

#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cli_support.hpp"

namespace {

using namespace cli_support;

// A bounds sweep small enough for a test (a point in each regime, two N, ten tasks): about a second.
std::vector<std::string> tiny_bounds(const std::string& out) {
  return {"--quiet", "--threads", "1", "bounds", "--d-grid", "2", "--n-grid", "8,16", "--eps-grid", "0.2", "--k-grid", "8",
          "--tasks", "10", "--queries", "8", "--models", "gd-ls", "--heads", "avg", "--bootstrap",
          "50", "--out", out};
}

// A Python package directory whose `matplotlib` runs `body` when imported.
fs::path fake_matplotlib(const std::string& name, const std::string& body) {
  const fs::path dir = fresh_dir(name) / "site";
  fs::create_directories(dir / "matplotlib");
  std::ofstream(dir / "matplotlib" / "__init__.py") << body;
  return dir;
}

void expect_bad(const std::vector<std::string>& args, const std::string& expected, const RunOptions& options = {}) {
  std::string joined;
  for (const auto& arg : args) joined += arg + " ";
  const Result result = run(args, options);
  EXPECT_EQ(result.exit_code, 2) << joined << "\n" << result.err;
  EXPECT_EQ(count_lines(result.err), 1) << joined << "\n" << result.err;
  EXPECT_NE(result.err.find(expected), std::string::npos) << joined << "\n" << result.err;
}

// --- 1. No shell ever sees user input -----------------------------------------------------

// The directory reaches the plot script as one argument: quotes, $(...) and backquotes in it
// run nothing (std::system ran "touch PWNED" for the first one).
TEST(CliNoShell, OutputPathWithShellSyntaxRunsNothing) {
  const fs::path dir = fresh_dir("noshell");
  for (const std::string name : {"x'; touch PWNED; echo '", "$(touch PWNED2)`touch PWNED3`\"; touch PWNED4"}) {
    const Result result = run(tiny_bounds((dir / name).string()), {{}, dir});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    EXPECT_TRUE(fs::exists(dir / name / "err_vs_n.png")) << result.err;
  }
  for (const char* marker : {"PWNED", "PWNED2", "PWNED3", "PWNED4"}) {
    EXPECT_FALSE(fs::exists(dir / marker)) << marker;
    EXPECT_FALSE(fs::exists(marker)) << marker;
  }
}

// Without matplotlib: exit 0, every other output, one warning line and no traceback.
TEST(CliNoShell, MissingMatplotlibIsOneWarningLine) {
  const fs::path site = fake_matplotlib("nomatplotlib", "raise ImportError('No module named matplotlib')\n");
  const fs::path out = fresh_dir("nomatplotlib_run") / "run";
  const Result result = run(tiny_bounds(out.string()), {{{"PYTHONPATH", site.string()}}, {}});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(count_lines(result.err), 1) << result.err;
  EXPECT_NE(result.err.find("warning: plots were not drawn"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("matplotlib"), std::string::npos) << result.err;
  EXPECT_TRUE(fs::exists(out / "report.md"));
  EXPECT_FALSE(fs::exists(out / "err_vs_n.png"));
}

// Ctrl-C in a terminal reaches the plot script too: the script ending by SIGINT ends iclbench by
// SIGINT (a shell's 130), not with exit 0.
TEST(CliNoShell, InterruptedPlotScriptEndsTheRunBySigint) {
  const fs::path site = fake_matplotlib("sigint_child", "import os, signal\nos.kill(os.getpid(), signal.SIGINT)\n");
  const fs::path out = fresh_dir("sigint_child_run") / "run";
  const Result result = run(tiny_bounds(out.string()), {{{"PYTHONPATH", site.string()}}, {}});
  EXPECT_EQ(result.exit_code, 128 + SIGINT) << result.err;
}

// SIGINT sent to iclbench alone (kill -INT) is passed on to the plot script, which would
// otherwise go on running after iclbench has gone.
TEST(CliNoShell, InterruptOfIclbenchReachesThePlotScript) {
  const fs::path dir = fresh_dir("sigint_parent");
  const fs::path marker = dir / "still-running";
  const fs::path site = fake_matplotlib(
      "sigint_parent_site", "import os, signal, time\nos.kill(os.getppid(), signal.SIGINT)\ntime.sleep(2)\nopen('" +
                                marker.string() + "', 'w').close()\n");
  const Result result = run(tiny_bounds((dir / "run").string()), {{{"PYTHONPATH", site.string()}}, {}});
  EXPECT_EQ(result.exit_code, 128 + SIGINT) << result.err;
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_FALSE(fs::exists(marker)) << "the plot script outlived an interrupted iclbench";
}

// --- 6. Non-regular inputs are refused, not waited on ------------------------------------

TEST(CliInputs, FifoAndDirectoryInputsAreRefused) {
  const fs::path dir = fresh_dir("fifo");
  const fs::path fifo = dir / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string out = (dir / "out").string();
  expect_bad({"eval", "--data", fifo.string(), "--out", out + ".json"}, fifo.string() + ": not a regular file");
  expect_bad({"model", "--info", fifo.string()}, fifo.string() + ": not a regular file");
  // Siblings: the other inputs, a FIFO or a directory.
  expect_bad({"speed", "--model", fifo.string()}, fifo.string() + ": not a regular file");
  expect_bad({"bounds", "--config", fifo.string(), "--out", out}, fifo.string() + ": not a regular file");
  expect_bad({"eval", "--data", dir.string(), "--out", out + ".json"}, dir.string() + ": not a regular file");
  expect_bad({"bounds", "--config", "/dev/zero", "--out", out}, "/dev/zero: not a regular file");
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".json"));
}

// --- 5. User errors are exit 2 with one line naming the path -----------------------------

TEST(CliUserErrors, UnusableOutputDirectoriesAreExitTwoNamingThePath) {
  const fs::path dir = fresh_dir("user_errors");
  const fs::path file = dir / "a-file";
  std::ofstream(file) << "mine";
  expect_bad(tiny_bounds(file.string()), file.string() + ": not a directory");
  expect_bad(tiny_bounds("/dev/null"), "/dev/null: not a directory");
  expect_bad({"bounds", "--config", dir.string(), "--out", (dir / "run").string()},
             dir.string() + ": not a regular file");
  // Siblings: a directory that cannot be made (sysfs refuses mkdir, even to root) and a path
  // under a file.
  expect_bad(tiny_bounds("/sys/iclbench-test-run"), "/sys/iclbench-test-run");
  expect_bad(tiny_bounds((file / "run").string()), (file / "run").string());
  EXPECT_EQ(read_all(file), "mine");
}

// --- 9. One line, decided before printing --------------------------------------------------

TEST(CliOneLine, ControlCharactersInInputAreEscaped) {
  const fs::path dir = fresh_dir("one_line");
  expect_bad({"gen", "--family", "gauss\nian", "--out", (dir / "x").string()}, "gauss\\nian");
  // Siblings: an escape sequence and a carriage return in a path.
  expect_bad({"model", "--info", (dir / "a\x1b[31mred").string()}, "a\\x1b[31mred");
  expect_bad({"eval", "--data", (dir / "cr\rhidden").string(), "--out", (dir / "r.json").string()}, "cr\\rhidden");
}

// --- 4. The output directory is owned by the run -----------------------------------------

TEST(CliOutputDirectory, UsersFilesEmptyPathsAndConcurrentRunsAreRefused) {
  const fs::path dir = fresh_dir("owned");
  // A directory of the user's own files is not a run: nothing in it is replaced.
  const fs::path mine = dir / "mine";
  fs::create_directories(mine);
  std::ofstream(mine / "report.md") << "my notes";
  std::vector<std::string> args = tiny_bounds(mine.string());
  args.push_back("--no-plots");
  expect_bad(args, mine.string() + " is not empty and holds no bounds run");
  EXPECT_EQ(read_all(mine / "report.md"), "my notes");
  EXPECT_EQ(std::distance(fs::directory_iterator(mine), fs::directory_iterator()), 1);
  // Empty paths, for a directory and (siblings) for files.
  expect_bad(tiny_bounds(""), "output directory path is empty");
  expect_bad({"gen", "--tasks", "2", "--out", ""}, "output path is empty");
  expect_bad({"eval", "--d", "4", "--tasks", "2", "--out", ""}, "output path is empty");
  // A run holding the directory: a second one is refused at once (the lock is the directory's
  // flock, taken here as a running iclbench would).
  const fs::path run_dir = dir / "run";
  args = tiny_bounds(run_dir.string());
  args.push_back("--no-plots");
  ASSERT_EQ(run(args).exit_code, 0);
  const int fd = ::open(run_dir.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  expect_bad(args, run_dir.string() + " is in use by another iclbench run");
  ::close(fd);
  // Released: the same configuration resumes.
  const Result resumed = run(args);
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
}

// --- 3. Resume checks what it reads ------------------------------------------------------

// Every damaged point file is computed again with one notice line, and the run ends with the same
// bytes as the undamaged one.
TEST(CliResume, DamagedPointFilesAreRecomputed) {
  const fs::path dir = fresh_dir("resume") / "run";
  std::vector<std::string> args = tiny_bounds(dir.string());
  args.push_back("--no-plots");
  ASSERT_EQ(run(args).exit_code, 0);
  const std::string points_csv = read_all(dir / "points.csv"), fits = read_all(dir / "fits.json");
  const fs::path a = dir / "points" / "A-d2.json", b = dir / "points" / "B-d2-k8.json";
  const nlohmann::json good_a = nlohmann::json::parse(read_all(a)), good_b = nlohmann::json::parse(read_all(b));

  using Damage = void (*)(nlohmann::json&);
  const std::vector<std::pair<const char*, Damage>> damages = {
      {"empty err and dis", [](nlohmann::json& p) { p["curves"][0]["err"] = nlohmann::json::array(); p["curves"][0]["dis"] = nlohmann::json::array(); }},
      {"shortened n", [](nlohmann::json& p) { p["n"].erase(p["n"].size() - 1); }},
      {"empty curves", [](nlohmann::json& p) { p["curves"] = nlohmann::json::array(); }},
      // Siblings: another point's file, a rate outside [0, 1], one task fewer, a renamed head,
      // a value of the wrong type, a file that is not JSON.
      {"another point", [](nlohmann::json& p) { p["d"] = 3; }},
      {"rate 1.5", [](nlohmann::json& p) { p["curves"][1]["err"][0][0] = 1.5; }},
      {"a task fewer", [](nlohmann::json& p) { p["curves"][0]["dis"][1].erase(0); }},
      {"renamed head", [](nlohmann::json& p) { p["curves"][1]["learner"] = "ls"; }},
      {"string rate", [](nlohmann::json& p) { p["curves"][0]["err"][0][0] = "0.1"; }},
  };
  for (const auto& [what, damage] : damages) {
    nlohmann::json damaged = good_a;
    damage(damaged);
    std::ofstream(a) << damaged.dump();
    const Result result = run(args);
    EXPECT_EQ(result.exit_code, 0) << what << "\n" << result.err;
    EXPECT_EQ(count_lines(result.err), 1) << what << "\n" << result.err;
    EXPECT_NE(result.err.find("notice: recomputing " + a.string()), std::string::npos) << what << "\n" << result.err;
    EXPECT_EQ(nlohmann::json::parse(read_all(a)), good_a) << what;
    EXPECT_EQ(read_all(dir / "points.csv"), points_csv) << what;
    EXPECT_EQ(read_all(dir / "fits.json"), fits) << what;
  }
  std::ofstream(b) << "{\"format\": \"iclbench-bounds-point\", trunc";
  const Result result = run(args);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("notice: recomputing " + b.string()), std::string::npos) << result.err;
  EXPECT_EQ(nlohmann::json::parse(read_all(b)), good_b);
  EXPECT_EQ(read_all(dir / "points.csv"), points_csv);
}

}  // namespace

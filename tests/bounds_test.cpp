// Bounds: n* interpolation and fits on synthetic inputs with known answers, a small real sweep,
// and kill-and-resume of the CLI run.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>
#include <algorithm>

#include "bounds/bounds.hpp"

namespace iclbench::bounds {
namespace {

namespace fs = std::filesystem;

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST(NStar, InterpolatesOnTheLogGrid) {
  // q = 5/N exactly: log-log interpolation recovers N = 5/eps between grid points.
  const std::vector<std::int64_t> n = {10, 100, 1000};
  const std::vector<double> q = {0.5, 0.05, 0.005};
  EXPECT_NEAR(*n_star(n, q, 0.1).value, 50.0, 1e-9);
  EXPECT_NEAR(*n_star(n, q, 0.01).value, 500.0, 1e-9);
  EXPECT_NEAR(*n_star(n, q, 0.05).value, 100.0, 1e-9);
  const NStar below = n_star(n, q, 0.9);
  EXPECT_TRUE(below.below_grid);
  EXPECT_EQ(*below.value, 10.0);
  EXPECT_FALSE(n_star(n, q, 0.001).value.has_value());
  // A curve that is not monotone: the first crossing counts.
  EXPECT_NEAR(*n_star({10, 100, 1000}, {0.5, 0.05, 0.5}, 0.1).value, 50.0, 1e-9);
}

TEST(PowerFit, RecoversKnownSlopes) {
  std::vector<double> d, eps, n;
  for (double dim : {4.0, 8.0, 16.0, 32.0}) {
    for (double e : {0.3, 0.1, 0.03}) {
      d.push_back(dim);
      eps.push_back(e);
      n.push_back(3.0 * std::pow(dim, 1.0) * std::pow(e, -2.0));
    }
  }
  const PowerFit fit = fit_power_law(d, eps, n);
  ASSERT_TRUE(fit.valid);
  EXPECT_NEAR(fit.a, std::log(3.0), 1e-10);
  EXPECT_NEAR(fit.b, 1.0, 1e-10);
  EXPECT_NEAR(fit.c, 2.0, 1e-10);
  // One d only: the d-slope is not identifiable.
  EXPECT_FALSE(fit_power_law({4, 4, 4, 4}, {0.3, 0.2, 0.1, 0.05}, {1, 2, 3, 4}).valid);
}

TEST(Theory, ClosedForms) {
  EXPECT_NEAR(pac_sample_size(0.1, 0.05, 10), 40 * (10 * std::log2(120.0) + std::log2(40.0)), 1e-9);
  EXPECT_NEAR(hoeffding_sample_size(0.1, 0.05), std::log(40.0) / 0.02, 1e-9);
  EXPECT_NEAR(averaging_error(9, 100), std::sqrt(8 / (2 * M_PI * 100)), 1e-15);
}

BoundsConfig small_config() {
  BoundsConfig config;
  config.d_grid = {4, 8};
  config.n_grid = {8, 16, 32, 64, 128, 256, 512};
  config.eps_grid = {0.3, 0.2, 0.15, 0.1};
  config.models = {"gd-ls:L=1", "gd-hinge:L=200,eta=2,tau=0.5"};
  config.heads = {"logistic"};
  config.tasks = 60;
  config.queries = 64;
  config.bootstrap = 200;
  config.seed = 1;
  return config;
}

TEST(SmallSweep, AveragingTracksItsClosedFormAndSlopesDiffer) {
  const BoundsConfig config = small_config();
  std::vector<PointResult> points;
  for (const PointKey& key : sweep_points(config)) points.push_back(run_point(config, key));
  // The averaging model's mean exact error against sqrt((d - 1)/(2 pi n)) for n >= 16 d: within
  // 4 standard errors of the task mean (the closed form is the large-n limit; at n = 16 d its
  // relative bias is a few percent, well inside that).
  for (const PointResult& point : points) {
    const Curve& averaging = point.curves[0];
    ASSERT_EQ(averaging.learner, "gd-ls:L=1,eta=1");
    ASSERT_EQ(averaging.metric, "err_exact");
    for (std::size_t j = 0; j < point.n.size(); ++j) {
      if (point.n[j] < 16 * point.key.d) continue;
      const auto& per_task = averaging.err[j];
      double mean = 0, square = 0;
      for (double e : per_task) {
        mean += e;
        square += e * e;
      }
      mean /= per_task.size();
      const double sd = std::sqrt((square / per_task.size() - mean * mean) / per_task.size());
      EXPECT_NEAR(mean, averaging_error(point.key.d, point.n[j]), 4 * sd)
          << "d=" << point.key.d << " n=" << point.n[j];
    }
  }
  // The eps-slopes of averaging (~2) and hinge GD (ERM-like, lower) differ beyond both intervals.
  const fs::path dir = fs::path(ICLBENCH_TEST_TMPDIR) / "bounds_small";
  fs::remove_all(dir);
  run_bounds(config, dir, {}, false);
  const auto fits = nlohmann::json::parse(read_all(dir / "fits.json"));
  const auto& averaging = fits["gd-ls:L=1,eta=1"]["err"]["fit"];
  const auto& hinge = fits["gd-hinge:L=200,eta=2,tau=0.5"]["err"]["fit"];
  ASSERT_TRUE(averaging["valid"].get<bool>());
  ASSERT_TRUE(hinge["valid"].get<bool>());
  EXPECT_GT(averaging["c_ci"][0].get<double>(), hinge["c_ci"][1].get<double>())
      << "averaging c " << averaging["c"] << " " << averaging["c_ci"] << ", hinge c " << hinge["c"] << " "
      << hinge["c_ci"];
}

// The CLI, killed mid-sweep and resumed, ends with the same bytes as an uninterrupted run.
int run_cli(const std::vector<std::string>& args, bool wait_and_kill_after_first_point,
            const fs::path& points_dir) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::freopen("/dev/null", "w", stdout);
    std::freopen("/dev/null", "w", stderr);
    std::vector<std::string> copies = args;
    std::vector<char*> argv;
    std::string binary = ICLBENCH_BINARY;
    argv.push_back(binary.data());
    for (auto& arg : copies) argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execv(binary.c_str(), argv.data());
    _exit(127);
  }
  if (wait_and_kill_after_first_point) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    auto done_points = [&] {
      int count = 0;
      if (fs::exists(points_dir))
        for (const auto& entry : fs::directory_iterator(points_dir))
          count += entry.path().extension() == ".json";
      return count;
    };
    while (done_points() < 1 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(pid, SIGKILL);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

TEST(Resume, KilledAndResumedRunEqualsAnUninterruptedOne) {
  const fs::path base = fs::path(ICLBENCH_TEST_TMPDIR) / "bounds_resume";
  fs::remove_all(base);
  const std::vector<std::string> flags = {
      "bounds", "--d-grid", "3,5,7", "--n-grid", "8,16,32,64,128", "--eps-grid", "0.3,0.2",
      "--k-grid", "8", "--models", "gd-ls:L=1;gd-hinge:L=60,eta=1", "--heads", "logistic,avg",
      "--tasks", "20", "--queries", "32", "--bootstrap", "60", "--no-plots", "--quiet", "--seed", "5"};
  auto with_out = [&](const fs::path& dir) {
    std::vector<std::string> args = flags;
    args.push_back("--out");
    args.push_back(dir.string());
    return args;
  };
  ASSERT_EQ(run_cli(with_out(base / "whole"), false, {}), 0);
  const int killed = run_cli(with_out(base / "resumed"), true, base / "resumed" / "points");
  EXPECT_EQ(killed, -SIGKILL) << "the run finished before it could be killed";
  EXPECT_FALSE(fs::exists(base / "resumed" / "fits.json"));
  ASSERT_EQ(run_cli(with_out(base / "resumed"), false, {}), 0);
  for (const char* file : {"points.csv", "fits.json", "report.md", "config.json"}) {
    EXPECT_EQ(read_all(base / "whole" / file), read_all(base / "resumed" / file)) << file;
  }
  // Another configuration in the same directory is refused, and nothing there changes.
  std::vector<std::string> other = with_out(base / "resumed");
  *(std::find(other.begin(), other.end(), "--tasks") + 1) = "25";
  const std::string before = read_all(base / "resumed" / "fits.json");
  EXPECT_EQ(run_cli(other, false, {}), 2);
  EXPECT_EQ(read_all(base / "resumed" / "fits.json"), before);
}

}  // namespace
}  // namespace iclbench::bounds

#include "runtime/progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace iclbench::runtime {
namespace {
constexpr double kQuietSeconds = 2.0;
constexpr double kTerminalInterval = 0.25;
constexpr double kLogInterval = 10.0;
}  // namespace

Progress::Progress(std::string label, std::string unit, std::int64_t total, bool enabled)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      enabled_(enabled),
      terminal_(::isatty(STDERR_FILENO) != 0),
      start_(Clock::now()),
      last_print_(start_) {}

Progress::~Progress() { finish(); }

void Progress::update(std::int64_t done) {
  if (!enabled_) return;
  const auto now = Clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double since_print = std::chrono::duration<double>(now - last_print_).count();
  if (elapsed < kQuietSeconds) return;
  if (printed_ && since_print < (terminal_ ? kTerminalInterval : kLogInterval)) return;
  last_print_ = now;
  print(done, elapsed);
}

util::ProgressCallback Progress::callback() {
  return [this](std::int64_t done, std::int64_t) { update(done); };
}

void Progress::print(std::int64_t done, double elapsed) {
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : 0.0;
  std::fprintf(stderr, "%s%s: %lld/%lld %s (%.0f%%), %.1f %s/s, ETA %.0f s%s",
               terminal_ ? "\r" : "", label_.c_str(), static_cast<long long>(done),
               static_cast<long long>(total_), unit_.c_str(),
               total_ > 0 ? 100.0 * static_cast<double>(done) / static_cast<double>(total_) : 100.0,
               rate, unit_.c_str(), eta, terminal_ ? "\033[K" : "\n");
  std::fflush(stderr);
  printed_ = true;
}

void Progress::finish() {
  if (enabled_ && printed_ && terminal_) std::fputc('\n', stderr);
  printed_ = false;
  enabled_ = false;
}

}  // namespace iclbench::runtime

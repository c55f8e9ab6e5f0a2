#include "bench_common.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string_view>
#include <vector>

#include "ops/gemm_peak.hpp"
#include "util/cpu_time.hpp"
#include "util/numbers.hpp"
#include "util/text.hpp"

namespace iclbench::bench {
namespace {

// Google Benchmark 1.7.1's flags (src/benchmark.cc, ParseCommandLineFlags) by the value they take.
enum class FlagValue {
  kBool,
  kMinTime,
  kWarmupTime,
  kRepetitions,
  kVerbosity,
  kAny,
  kFormat,
  kFile,
  kColor,
  kContext,
  kTimeUnit
};
struct Flag {
  std::string_view name;
  FlagValue value;
};
constexpr Flag kFlags[] = {
    {"benchmark_list_tests", FlagValue::kBool},
    {"benchmark_filter", FlagValue::kAny},
    {"benchmark_min_time", FlagValue::kMinTime},
    {"benchmark_min_warmup_time", FlagValue::kWarmupTime},
    {"benchmark_repetitions", FlagValue::kRepetitions},
    {"benchmark_enable_random_interleaving", FlagValue::kBool},
    {"benchmark_report_aggregates_only", FlagValue::kBool},
    {"benchmark_display_aggregates_only", FlagValue::kBool},
    {"benchmark_format", FlagValue::kFormat},
    {"benchmark_out", FlagValue::kFile},
    {"benchmark_out_format", FlagValue::kFormat},
    {"benchmark_color", FlagValue::kColor},
    {"benchmark_counters_tabular", FlagValue::kBool},
    // libpfm counter names: left to Google Benchmark (Debian's 1.7.1 has no libpfm; it says
    // "Performance counters not supported." and runs without them).
    {"benchmark_perf_counters", FlagValue::kAny},
    {"benchmark_context", FlagValue::kContext},
    {"benchmark_time_unit", FlagValue::kTimeUnit},
    {"v", FlagValue::kVerbosity},
};

// Longer than a minimum time per benchmark has any use for; it also keeps the iteration
// estimate Google Benchmark derives from it finite.
constexpr double kMaxSeconds = 3600;
constexpr std::int64_t kMaxRepetitions = 1000;

bool one_of(std::string_view value, std::initializer_list<std::string_view> words) {
  return std::find(words.begin(), words.end(), value) != words.end();
}

// The spellings of IsTruthyFlagValue's true and false; it reads any other word as true.
bool is_bool_word(std::string_view value) {
  std::string lower(value);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return one_of(lower,
                {"", "true", "false", "yes", "no", "on", "off", "1", "0", "t", "f", "y", "n"});
}

// Whether Google Benchmark can open `path` for writing, checked without creating it: it exits 1
// when it cannot, after the benchmarks' set-up.
bool writable_file(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) return false;
  if (std::filesystem::exists(path, error)) return ::access(path.c_str(), W_OK) == 0;
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const std::string directory = parent.empty() ? "." : parent.string();
  return std::filesystem::is_directory(directory, error) &&
         ::access(directory.c_str(), W_OK | X_OK) == 0;
}

// "" if `value` suits `kind`, else what the flag takes.
std::string check_value(FlagValue kind, const std::string& value) {
  switch (kind) {
    case FlagValue::kBool:
      return is_bool_word(value) ? "" : "must be true or false (or nothing, for true)";
    case FlagValue::kMinTime:
    case FlagValue::kWarmupTime: {
      const std::optional<double> seconds = util::parse_real(value);
      const bool positive = kind == FlagValue::kMinTime;  // a warm-up may be 0 (its default)
      if (seconds && std::isfinite(*seconds) && (positive ? *seconds > 0 : *seconds >= 0) &&
          *seconds <= kMaxSeconds)
        return "";
      return std::string("must be seconds in ") + (positive ? "(0" : "[0") +
             ", 3600] as a plain number (Google Benchmark 1.7 takes no 's' or 'x' suffix)";
    }
    case FlagValue::kRepetitions: {
      const std::optional<std::int64_t> count = util::parse_int64(value);
      return count && *count >= 1 && *count <= kMaxRepetitions ? ""
                                                               : "must be an integer in [1, 1000]";
    }
    case FlagValue::kVerbosity: {
      const std::optional<std::int64_t> level = util::parse_int64(value);
      return level && *level >= 0 && *level <= std::numeric_limits<std::int32_t>::max()
                 ? ""
                 : "must be an integer >= 0";
    }
    case FlagValue::kAny:
      return "";
    case FlagValue::kFormat:
      return one_of(value, {"console", "json", "csv"}) ? "" : "must be console, json or csv";
    case FlagValue::kFile:
      return value.empty() || writable_file(value) ? "" : "is no file that can be written";
    case FlagValue::kColor:
      return value == "auto" || (!value.empty() && is_bool_word(value))
                 ? ""
                 : "must be auto, true or false";
    case FlagValue::kContext: {
      // key=value pairs separated by commas, as Google Benchmark splits them (StrSplit).
      std::size_t start = 0;
      while (!value.empty() && start <= value.size()) {
        const std::size_t end = std::min(value.find(',', start), value.size());
        const std::string_view pair = std::string_view(value).substr(start, end - start);
        if (std::count(pair.begin(), pair.end(), '=') != 1)
          return "must be KEY=VALUE pairs separated by commas";
        start = end + 1;
      }
      return "";
    }
    case FlagValue::kTimeUnit:
      return one_of(value, {"", "ns", "us", "ms", "s"}) ? "" : "must be ns, us, ms or s";
  }
  return "";
}

}  // namespace

std::string check_benchmark_flags(int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view argument = argv[i];
    if (argument == "--help" || argument.starts_with("--help=")) return "";  // Initialize prints it
  }
  std::vector<std::string_view> given;
  for (int i = 1; i < argc; ++i) {
    const std::string argument = argv[i];
    const std::size_t equals = argument.find('=');
    const std::string name = argument.substr(0, equals);
    const auto flag = std::find_if(std::begin(kFlags), std::end(kFlags), [&](const Flag& known) {
      return "--" + std::string(known.name) == name;
    });
    if (flag == std::end(kFlags))
      return "unknown flag " + util::escape_control(argument) + " (--help lists them)";
    if (equals == std::string::npos && flag->value != FlagValue::kBool)
      return util::escape_control(argument) + " needs a value (" + name + "=...)";
    given.push_back(flag->name);
    const std::string value = equals == std::string::npos ? "" : argument.substr(equals + 1);
    if (const std::string error = check_value(flag->value, value); !error.empty())
      return util::escape_control(argument) + ": " + error;
  }
  // The environment gives the flags' defaults (BM_DEFINE_*: BENCHMARK_MIN_TIME for
  // benchmark_min_time), so a bad one hangs or aborts as the flag does unless the flag replaces it.
  for (const Flag& flag : kFlags) {
    // --v's variable would be V, too common a name to refuse (and no value of it does harm).
    if (flag.name == "v" || std::find(given.begin(), given.end(), flag.name) != given.end())
      continue;
    std::string variable(flag.name);
    for (char& c : variable) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    const char* value = std::getenv(variable.c_str());
    if (value == nullptr) continue;
    if (const std::string error = check_value(flag.value, value); !error.empty())
      return "environment variable " + variable + "=" + util::escape_control(value) + " (--" +
             std::string(flag.name) + "): " + error;
  }
  return "";
}

double gemm_peak_gflops(bool bf16) {
  return ops::gemm_peak_gflops(bf16 ? ops::DType::kBF16 : ops::DType::kF32);
}

LoopCpuTime::LoopCpuTime() : start_(util::process_cpu_seconds()) {}

double LoopCpuTime::seconds() const { return util::process_cpu_seconds() - start_; }

void set_counters(benchmark::State& state, double flops, double tokens, double prompts, bool bf16,
                  double loop_cpu_seconds) {
  const auto iterations = static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(flops * iterations / 1e9, benchmark::Counter::kIsRate);
  // Both rates per CPU-second (see bench_common.hpp).
  const double peak = gemm_peak_gflops(bf16);
  state.counters["peak_frac"] =
      loop_cpu_seconds > 0
          ? benchmark::Counter(flops * iterations / 1e9 / loop_cpu_seconds / peak)
          : benchmark::Counter(flops * iterations / 1e9 / peak, benchmark::Counter::kIsRate);
  if (tokens > 0) state.counters["tokens/s"] = benchmark::Counter(tokens * iterations, benchmark::Counter::kIsRate);
  if (prompts > 0) state.counters["prompts/s"] = benchmark::Counter(prompts * iterations, benchmark::Counter::kIsRate);
}

}  // namespace iclbench::bench

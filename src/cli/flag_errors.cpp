#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "cli/commands.hpp"
#include "util/numbers.hpp"

namespace iclbench::cli {

std::optional<std::string> under_flag(const util::ParameterError& error, const CLI::App& app) {
  // A parameter's flag is its name with dashes ("n_grid" -> --n-grid), except where the flag
  // drops a qualifier the command makes obvious.
  static const std::map<std::string, std::string, std::less<>> kFlags = {
      {"regime_b_contexts", "--context"}, {"regime_b_s", "--s-size"},
      {"regime_b_deltas", "--b-deltas"}, {"regime_b_tasks", "--b-tasks"}};
  std::string flag = "--" + error.parameter();
  std::replace(flag.begin(), flag.end(), '_', '-');
  if (const auto found = kFlags.find(error.parameter()); found != kFlags.end())
    flag = found->second;
  const CLI::Option* option = app.get_option_no_throw(flag);
  if (option == nullptr || option->count() == 0) return std::nullopt;
  return flag + " " + error.problem();
}

namespace {

// Rewrites an integer flag's value to its canonical decimal form, or refuses it, before CLI11's
// own conversion (strtoull: "-1" and 2^64 wrap to 2^64 - 1, "1e23" came out as 2^64 - 1 too,
// "010" is octal). The command's range check then sees the number that was typed.
CLI::Validator strict_integer(bool is_unsigned) {
  return CLI::Validator(
      [is_unsigned](std::string& text) -> std::string {
        if (is_unsigned) {
          if (const auto value = util::parse_uint64(text)) {
            text = std::to_string(*value);
            return {};
          }
          return "'" + text + "' is not an integer in [0, 2^64 - 1] written in decimal digits";
        }
        if (const auto value = util::parse_int64(text)) {
          text = std::to_string(*value);
          return {};
        }
        return "'" + text + "' is not an integer written in decimal digits";
      },
      "", "strict integer");
}

}  // namespace

void make_integers_strict(CLI::App& app) {
  for (CLI::Option* option : app.get_options()) {
    const std::string type = option->get_type_name();
    if (type == "INT" || type == "UINT") option->transform(strict_integer(type == "UINT"));
  }
  for (CLI::App* subcommand : app.get_subcommands([](CLI::App*) { return true; })) make_integers_strict(*subcommand);
}

CLI::Validator positive_finite_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value) || !std::isfinite(value) || value <= 0) {
          return "'" + text + "' is not a positive finite number";
        }
        return {};
      },
      "POSITIVE", "positive finite number");
}

}  // namespace iclbench::cli

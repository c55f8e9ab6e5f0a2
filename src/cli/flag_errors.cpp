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

// A real-valued flag in decimal notation (or inf/nan, which the parameter's own domain check then
// refuses with its message): CLI11 reads with strtold, which also takes "0x1p-3" and " 5".
CLI::Validator strict_real() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        if (util::parse_real(text)) return {};
        return "'" + text + "' is not a number written in decimal notation";
      },
      "", "strict real");
}

// A path given explicitly must name something: "" is refused, never read as "not given" (which
// wrote into the current directory or skipped an output the user asked for).
CLI::Validator non_empty_path() {
  return CLI::Validator([](std::string& text) -> std::string { return text.empty() ? "empty path" : ""; }, "",
                        "non-empty path");
}

}  // namespace

void make_flags_strict(CLI::App& app) {
  for (CLI::Option* option : app.get_options()) {
    // A validator with a description appends it ("FLOAT:POSITIVE"); the type is what precedes it.
    const std::string full_type = option->get_type_name();
    const std::string type = full_type.substr(0, full_type.find(':'));
    if (type == "INT" || type == "UINT") option->transform(strict_integer(type == "UINT"));
    if (type == "FLOAT") option->check(strict_real());
    if (full_type.find(kPathType) != std::string::npos) option->check(non_empty_path());
  }
  for (CLI::App* subcommand : app.get_subcommands([](CLI::App*) { return true; })) make_flags_strict(*subcommand);
}

void refuse_empty_list_elements(const CLI::App& app, const std::vector<std::string>& args) {
  const CLI::App* command = nullptr;
  for (const CLI::App* subcommand : app.get_subcommands()) command = subcommand;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") break;
    if (!arg.starts_with("-")) continue;
    const std::size_t equals = arg.find('=');
    const std::string name = arg.substr(0, equals);
    const CLI::Option* option = command != nullptr ? command->get_option_no_throw(name) : nullptr;
    if (option == nullptr) option = app.get_option_no_throw(name);
    if (option == nullptr || option->get_delimiter() == '\0') continue;
    const std::string value = equals != std::string::npos ? arg.substr(equals + 1) : i + 1 < args.size() ? args[i + 1] : "";
    const char delimiter = option->get_delimiter();
    if (value.find(delimiter) == std::string::npos) continue;
    const std::string doubled(2, delimiter);
    if (value.front() == delimiter || value.back() == delimiter || value.find(doubled) != std::string::npos) {
      throw CLI::ValidationError(name, "empty element in '" + value + "'");
    }
  }
}

CLI::Validator positive_finite_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        const std::optional<double> value = util::parse_real(text);
        if (!value || !std::isfinite(*value) || *value <= 0) {
          return "'" + text + "' is not a positive finite number";
        }
        return {};
      },
      "POSITIVE", "positive finite number");
}

}  // namespace iclbench::cli

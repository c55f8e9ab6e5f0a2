#include <algorithm>
#include <map>

#include "cli/commands.hpp"

namespace iclbench::cli {

std::optional<std::string> under_flag(const util::ParameterError& error, const CLI::App& app) {
  // A parameter's flag is its name with dashes ("n_grid" -> --n-grid), except where the flag
  // drops a qualifier the command makes obvious.
  static const std::map<std::string, std::string, std::less<>> kFlags = {
      {"regime_b_context", "--context"}};
  std::string flag = "--" + error.parameter();
  std::replace(flag.begin(), flag.end(), '_', '-');
  if (const auto found = kFlags.find(error.parameter()); found != kFlags.end())
    flag = found->second;
  const CLI::Option* option = app.get_option_no_throw(flag);
  if (option == nullptr || option->count() == 0) return std::nullopt;
  return flag + " " + error.problem();
}

}  // namespace iclbench::cli

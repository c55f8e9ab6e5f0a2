#pragma once
// Bad parameters, named in the library's terms.
//
// A library error names the parameter as the library and its files know it: the key it has in
// the JSON that records it ("d", "n", "noise", "n_grid", "delta"), never a command-line flag, so
// that a reader of a bounds config file or a data set's metadata is told about what is in front
// of them. The command line, which knows which flag set which parameter, reports the same error
// under the flag (src/cli/: "--d must be in ...").

#include <stdexcept>
#include <string>
#include <utility>

#include "util/text.hpp"

namespace iclbench::util {

// `parameter` is outside its domain; what() is "<parameter> <problem>", e.g. "d must be in
// [1, 65536], got 0". Like every error class of the suite, what() has user input's control
// characters escaped (util::escape_control): what() is a C string, and a NUL in a name read from a
// file would otherwise cut the message short.
class ParameterError : public std::invalid_argument {
 public:
  ParameterError(std::string parameter, std::string problem)
      : std::invalid_argument(escape_control(parameter + " " + problem)),
        parameter_(std::move(parameter)),
        problem_(std::move(problem)) {}
  const std::string& parameter() const noexcept { return parameter_; }
  const std::string& problem() const noexcept { return problem_; }

 private:
  std::string parameter_;
  std::string problem_;
};

// The one-line checks of validate() functions: throws Error(arguments...) unless `ok`.
template <typename Error = ParameterError, typename... Arguments>
void require(bool ok, Arguments&&... arguments) {
  if (!ok) throw Error(std::forward<Arguments>(arguments)...);
}

}  // namespace iclbench::util

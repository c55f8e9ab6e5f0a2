#pragma once
// The results of `iclbench eval` as files and text. Every file says its format and version and
// the parameters that made it.
//   JSON          every number with its interval, per-task errors with Wilson intervals, the grid
//   CSV           one row per learner x n' x metric: mean and (1 - delta)-quantile with intervals
//   table         the terminal summary, then throughput
//   predictions   safetensors with every learner's query scores "<name>/scores" [T, M] (the
//                 largest n'; "<name>/scores@n=<n'>" for the others), so that every metric can
//                 be recomputed without this code

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "eval/evaluate.hpp"
#include "io/atomic_file.hpp"

namespace iclbench::eval {

nlohmann::ordered_json to_json(const EvalResult& result);
std::string to_csv(const EvalResult& result);
std::string to_table(const EvalResult& result);
void write_predictions(const EvalResult& result, const std::filesystem::path& path,
                       io::Overwrite overwrite);

}  // namespace iclbench::eval

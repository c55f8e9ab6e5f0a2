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
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "eval/evaluate.hpp"
#include "io/atomic_file.hpp"
#include "io/safetensors.hpp"

namespace iclbench::eval {

nlohmann::ordered_json to_json(const EvalResult& result);
std::string to_csv(const EvalResult& result);
std::string to_table(const EvalResult& result);
// Every learner's query scores as safetensors ("<name>/scores" [T, M] at the largest n',
// "<name>/scores@n=<n'>" at the others). stage_predictions() writes the file but leaves it
// uncommitted (for io::commit_together() with the command's other outputs).
std::unique_ptr<io::SafetensorsWriter> stage_predictions(const EvalResult& result,
                                                        const std::filesystem::path& path,
                                                        io::Overwrite overwrite);
void write_predictions(const EvalResult& result, const std::filesystem::path& path,
                       io::Overwrite overwrite);

}  // namespace iclbench::eval

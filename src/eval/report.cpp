#include "eval/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <sstream>

#include "iclbench/version.hpp"
#include "io/safetensors.hpp"
#include "util/text.hpp"

namespace iclbench::eval {

namespace {

nlohmann::ordered_json summary_json(const Summary& s) {
  return {{"mean", s.mean},
          {"ci", {s.mean_ci.lo, s.mean_ci.hi}},
          {"quantile", s.quantile},
          {"quantile_ci", {s.quantile_ci.lo, s.quantile_ci.hi}}};
}

nlohmann::ordered_json point_json(const PrefixResult& point) {
  nlohmann::ordered_json json;
  json["n"] = point.n;
  json["context"] = point.context;
  const Summary& err = point.err.summary;
  json["err_mean"] = err.mean;
  json["err_ci"] = {err.mean_ci.lo, err.mean_ci.hi};
  json["err_quantile"] = err.quantile;
  json["err_quantile_ci"] = {err.quantile_ci.lo, err.quantile_ci.hi};
  if (point.err_noisy) json["err_noisy"] = summary_json(point.err_noisy->summary);
  if (point.exact_err) json["err_exact"] = summary_json(point.exact_err->summary);
  nlohmann::ordered_json dis = nlohmann::ordered_json::object();
  for (const auto& [head, metric] : point.dis) dis[head] = summary_json(metric.summary);
  json["dis"] = dis;
  json["nonfinite_tasks"] = point.nonfinite_tasks;
  if (!point.train_error.empty()) {
    // The ERM head: did it separate S on every task, and with which margins (per task).
    json["erm"] = {{"max_train_error", *std::max_element(point.train_error.begin(), point.train_error.end())},
                   {"min_margin", *std::min_element(point.margin.begin(), point.margin.end())},
                   {"train_error", point.train_error},
                   {"margin", point.margin}};
  }
  if (point.linear) {
    json["probe"] = {{"linear_in_query", *point.linear},
                     {"max_relative_residual", point.probe_residual}};
  }
  return json;
}

}  // namespace

nlohmann::ordered_json to_json(const EvalResult& result) {
  nlohmann::ordered_json json;
  json["format"] = "iclbench-eval";
  json["format_version"] = 1;
  json["iclbench_version"] = kVersion;
  json["git_revision"] = kGitRevision;
  json["data"] = nlohmann::json::parse(data::spec_to_json(result.data));
  json["data"]["seed"] = result.data.seed;
  json["data"]["source"] = result.data_source;
  std::vector<std::string> heads;
  for (const auto& head : result.config.heads) heads.push_back(head.name);
  json["params"] = {{"models", result.models},
                    {"heads", heads},
                    {"context", result.config.context.text},
                    {"n_grid", result.grid},
                    {"delta", result.config.delta},
                    {"bf16", result.config.bf16},
                    {"dense", result.config.dense},
                    {"seed", result.config.seed},
                    {"bootstrap", result.config.bootstrap},
                    {"threads", result.threads},
                    {"confidence", 0.95}};
  json["exact_error_applies"] = result.exact_applies;
  nlohmann::ordered_json learners = nlohmann::ordered_json::object();
  for (const LearnerResult& learner : result.learners) {
    const PrefixResult& last = learner.grid.back();
    nlohmann::ordered_json entry = point_json(last);  // the largest n' at the top level
    entry["kind"] = learner.is_model ? "transformer" : "head";
    std::vector<double> per_task = last.err.per_task;
    nlohmann::ordered_json wilson = nlohmann::ordered_json::array();
    const auto queries = result.data.n_queries;
    for (double e : per_task) {
      const Interval interval =
          wilson_interval(std::llround(e * static_cast<double>(queries)), queries);
      wilson.push_back({interval.lo, interval.hi});
    }
    entry["per_task"] = {{"err", per_task}, {"err_wilson", wilson}};
    if (result.grid.size() > 1) {
      nlohmann::ordered_json grid = nlohmann::ordered_json::array();
      for (const PrefixResult& point : learner.grid) grid.push_back(point_json(point));
      entry["grid"] = grid;
    }
    nlohmann::ordered_json speed = {{"seconds", learner.seconds}};
    if (learner.is_model && learner.seconds > 0) {
      speed["prompts_per_second"] = learner.prompts / learner.seconds;
      speed["tokens_per_second"] = learner.tokens / learner.seconds;
      speed["gflops_per_second"] = learner.flops / learner.seconds / 1e9;
    }
    entry["throughput"] = speed;
    learners[learner.name] = entry;
  }
  json["learners"] = learners;
  json["seconds"] = result.seconds;
  return json;
}

std::string to_csv(const EvalResult& result) {
  std::ostringstream csv;
  csv.precision(8);
  csv << "learner,kind,n,context,metric,reference,mean,ci_lo,ci_hi,quantile,quantile_lo,quantile_"
         "hi\n";
  for (const LearnerResult& learner : result.learners) {
    for (const PrefixResult& point : learner.grid) {
      auto row = [&](const char* metric, const std::string& reference, const Summary& s) {
        csv << util::csv_field(learner.name) << ',' << (learner.is_model ? "transformer" : "head") << ','
            << point.n << ',' << point.context << ',' << metric << ',' << util::csv_field(reference) << ','
            << s.mean << ',' << s.mean_ci.lo << ',' << s.mean_ci.hi << ',' << s.quantile << ','
            << s.quantile_ci.lo << ',' << s.quantile_ci.hi << '\n';
      };
      row("err", "truth", point.err.summary);
      if (point.err_noisy) row("err_noisy", "noisy_labels", point.err_noisy->summary);
      if (point.exact_err) row("err_exact", "truth", point.exact_err->summary);
      for (const auto& [head, metric] : point.dis) row("dis", head, metric.summary);
    }
  }
  return csv.str();
}

std::string to_table(const EvalResult& result) {
  std::ostringstream out;
  char line[512];
  const data::TaskSpec& data = result.data;
  std::snprintf(
      line, sizeof line,
      "eval: %s d=%lld, %lld tasks, N=%lld, %lld queries; context %s; delta %.3g; seed %llu; "
      "%d thread%s\n",
      std::string(data::family_name(data.family)).c_str(), static_cast<long long>(data.dim),
      static_cast<long long>(data.n_tasks), static_cast<long long>(data.n_examples),
      static_cast<long long>(data.n_queries), result.config.context.text.c_str(),
      result.config.delta, static_cast<unsigned long long>(result.config.seed), result.threads,
      result.threads == 1 ? "" : "s");
  out << line;
  for (std::size_t g = 0; g < result.grid.size(); ++g) {
    if (result.grid.size() > 1) out << "\nn' = " << result.grid[g] << "\n";
    std::snprintf(
        line, sizeof line, "%-34s %-24s %-8s %-8s", "learner", "err mean [95% CI]",
        ("q" + std::to_string(static_cast<int>(std::round(100 * (1 - result.config.delta)))))
            .c_str(),
        "exact");
    out << line;
    for (const auto& head : result.config.heads) {
      std::snprintf(line, sizeof line, " %-9s", ("dis " + util::escape_control(head.name)).substr(0, 9).c_str());
      out << line;
    }
    out << "\n";
    for (const LearnerResult& learner : result.learners) {
      const PrefixResult& point = learner.grid[g];
      const Summary& err = point.err.summary;
      char ci[64], exact[32];
      std::snprintf(ci, sizeof ci, "%.4f [%.4f, %.4f]", err.mean, err.mean_ci.lo, err.mean_ci.hi);
      if (point.exact_err) {
        std::snprintf(exact, sizeof exact, "%.4f", point.exact_err->summary.mean);
      } else {
        std::snprintf(exact, sizeof exact, "%s", point.linear && !*point.linear ? "nonlin" : "-");
      }
      std::snprintf(line, sizeof line, "%-34s %-24s %-8.4f %-8s",
                    util::escape_control(learner.name).substr(0, 34).c_str(), ci, err.quantile, exact);
      out << line;
      for (const auto& [head, metric] : point.dis) {
        std::snprintf(line, sizeof line, " %-9.4f", metric.summary.mean);
        out << line;
      }
      out << "\n";
    }
  }
  for (const LearnerResult& learner : result.learners) {
    for (const PrefixResult& point : learner.grid) {
      if (point.nonfinite_tasks == 0) continue;
      std::snprintf(line, sizeof line,
                    "warning: %s gave non-finite scores in %lld of %lld tasks at n' = %lld "
                    "(diverging? they count as errors)\n",
                    util::escape_control(learner.name).c_str(), static_cast<long long>(point.nonfinite_tasks),
                    static_cast<long long>(data.n_tasks), static_cast<long long>(point.n));
      out << line;
    }
  }
  // How the transformers ran (a bf16 plan is dense whatever --dense says).
  out << "\nthroughput (transformers: "
      << (result.config.bf16 ? "bf16" : result.config.dense ? "f32, dense" : "f32, structured") << ")\n";
  for (const LearnerResult& learner : result.learners) {
    if (learner.is_model) {
      std::snprintf(
          line, sizeof line, "  %-34s %8.2f s  %10.1f prompts/s  %12.0f tokens/s  %7.1f GFLOP/s\n",
          util::escape_control(learner.name).substr(0, 34).c_str(), learner.seconds, learner.prompts / learner.seconds,
          learner.tokens / learner.seconds, learner.flops / learner.seconds / 1e9);
    } else {
      std::snprintf(line, sizeof line, "  %-34s %8.2f s  (training and prediction, all tasks)\n",
                    util::escape_control(learner.name).substr(0, 34).c_str(), learner.seconds);
    }
    out << line;
  }
  std::snprintf(line, sizeof line, "total %.2f s\n", result.seconds);
  out << line;
  return out.str();
}

std::unique_ptr<io::SafetensorsWriter> stage_predictions(const EvalResult& result,
                                                        const std::filesystem::path& path,
                                                        io::Overwrite overwrite) {
  const std::int64_t tasks = result.data.n_tasks, m = result.data.n_queries;
  std::vector<io::TensorToWrite> tensors;
  std::vector<const std::vector<float>*> values;
  for (const LearnerResult& learner : result.learners) {
    for (const PrefixResult& point : learner.grid) {
      // The largest n' is "<name>/scores"; other grid points carry their n'.
      const bool last = &point == &learner.grid.back();
      tensors.push_back({learner.name + (last ? "/scores" : "/scores@n=" + std::to_string(point.n)),
                         io::DType::kF32,
                         {tasks, m}});
      values.push_back(&point.scores);
    }
  }
  std::vector<std::string> heads;
  for (const auto& head : result.config.heads) heads.push_back(head.name);
  const std::map<std::string, std::string> metadata = {
      {"format", "iclbench-predictions"},
      {"format_version", "1"},
      {"data", data::spec_to_json(result.data)},
      {"data_seed", std::to_string(result.data.seed)},
      {"context", result.config.context.text},
      {"seed", std::to_string(result.config.seed)},
      {"note", "sign(score) is the predicted label; score 0 counts as +1"},
  };
  auto writer = std::make_unique<io::SafetensorsWriter>(path, metadata, tensors, overwrite);
  for (std::size_t i = 0; i < tensors.size(); ++i) writer->write_f32(tensors[i].name, 0, *values[i]);
  return writer;
}

void write_predictions(const EvalResult& result, const std::filesystem::path& path,
                       io::Overwrite overwrite) {
  stage_predictions(result, path, overwrite)->commit();
}

}  // namespace iclbench::eval

// iclbench eval: in-context learners against trained heads on one task set.

#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <utility>

#include "cli/commands.hpp"
#include "cli/task_flags.hpp"
#include "data_gen/dataset.hpp"
#include "eval/evaluate.hpp"
#include "eval/report.hpp"
#include "model/constructions.hpp"
#include "model/resolve.hpp"
#include "runtime/memory.hpp"
#include "runtime/progress.hpp"
#include "runtime/threading.hpp"

namespace iclbench::cli {
namespace {

struct EvalOptions {
  std::string data;
  std::string generate;
  TaskFlags task;
  std::vector<std::string> models;
  std::string heads = "logistic,svm,ls,avg";
  std::string context = "full";
  std::vector<std::int64_t> n_grid;
  double delta = 0.05;
  bool bf16 = false;
  bool dense = false;
  int bootstrap = 1000;
  std::string out, csv, predictions;
  bool force = false;
};

// Splits "--d 16 --n 256" into words (no quoting needed: gen flags are numbers and names).
std::vector<std::string> words(const std::string& text) {
  std::istringstream stream(text);
  std::vector<std::string> out;
  for (std::string word; stream >> word;) out.push_back(word);
  return out;
}

// The task spec given by gen flags (directly or in --generate "..."); empty with --data.
std::optional<data::TaskSpec> spec_from_flags(const EvalOptions& options, std::uint64_t seed) {
  const bool direct = any_task_flag_given(options.task);
  if (!options.data.empty()) {
    if (direct || !options.generate.empty()) {
      throw UsageError("give either --data or task flags (--generate / --family --d ...), not both");
    }
    return std::nullopt;
  }
  if (options.generate.empty()) return resolve_task_flags(options.task, seed);
  if (direct) throw UsageError("give task flags either directly or in --generate, not both");
  CLI::App parser("--generate");
  TaskFlags flags;
  add_task_flags(parser, flags);
  make_flags_strict(parser);
  std::vector<std::string> args = words(options.generate);
  std::reverse(args.begin(), args.end());  // CLI11 takes a reversed vector
  try {
    parser.parse(args);
    return resolve_task_flags(flags, seed);
  } catch (const CLI::ParseError& error) {
    throw UsageError(std::string("--generate: ") + error.what());
  } catch (const util::ParameterError& error) {
    throw UsageError("--generate: " + under_flag(error, parser).value_or(error.what()));
  }
}

data::Dataset generate(const data::TaskSpec& spec, bool quiet) {
  runtime::Progress progress("generate", "tasks", spec.n_tasks, !quiet);
  data::WriteOptions write_options;
  write_options.progress = progress.callback();
  try {
    data::Dataset dataset = data::Dataset::generate_unnamed(spec, write_options);
    progress.finish();
    return dataset;
  } catch (const data::NoSpaceError& error) {
    throw no_space_error(error);
  }
}

}  // namespace

Command add_eval_command(CLI::App& parent, const GlobalOptions& globals) {
  CLI::App* app = parent.add_subcommand(
      "eval", "in-context learners (transformers) against trained heads: error, disagreement, "
              "confidence intervals, throughput");
  auto options = std::make_shared<EvalOptions>();
  app->add_option("--data", options->data, "task set written by `iclbench gen`")->type_name(kPathType);
  app->add_option("--generate", options->generate,
                  "generate the task set in memory from gen flags, e.g. \"--d 16 --n 256\"");
  add_task_flags(*app, options->task);
  app->add_option("--model", options->models,
                  "transformer: recipe (" + model::construction_names() + ") or model file; repeatable")
      ->type_name(std::string("RECIPE|") + kPathType);
  app->add_option("--heads", options->heads, "comma-separated heads: " + heads::head_names())
      ->capture_default_str();
  app->add_option("--context", options->context, "full | random:K | retrieve:K | ensemble:K (S in windows of K, scores averaged)")->capture_default_str();
  app->add_option("--n-grid", options->n_grid, "prefix sizes n' (comma-separated); default N")
      ->delimiter(',');
  app->add_option("--delta", options->delta, "quantile level: report the (1 - delta)-quantile over tasks")
      ->capture_default_str();
  app->add_option("--bootstrap", options->bootstrap, "bootstrap resamples")->capture_default_str();
  app->add_flag("--bf16", options->bf16, "bf16 matmuls in the transformers");
  app->add_flag("--dense", options->dense,
                "no plan-time weight structure in the transformers (every projection a dense GEMM)");
  app->add_option("--out", options->out, "result JSON")->required()->type_name(kPathType);
  app->add_option("--csv", options->csv, "also write the summaries as CSV")->type_name(kPathType);
  app->add_option("--dump-predictions", options->predictions,
                  "also write every learner's query scores as safetensors (<name>/scores [T, M])")
      ->type_name(kPathType);
  app->add_flag("--force", options->force, "replace existing output files");
  app->footer(family_help());

  auto run = [options, &globals] {
    const EvalOptions& o = *options;
    // Engine flags with heads only would be recorded in the result as how transformers ran
    // when none did: refused, as speed --reference refuses them.
    for (const auto& [flag, given] : {std::pair{"--bf16", o.bf16}, std::pair{"--dense", o.dense}}) {
      if (given && o.models.empty()) {
        throw UsageError(std::string(flag) + " sets how the transformers run; no --model is "
                         "evaluated (heads only)");
      }
    }
    const io::Overwrite overwrite = o.force ? io::Overwrite::kAllow : io::Overwrite::kRefuse;
    eval::EvalConfig config;
    config.heads = o.heads.empty() ? std::vector<heads::HeadSpec>{} : heads::parse_heads(o.heads);
    config.context = eval::parse_context(o.context);
    config.n_grid = o.n_grid;
    config.delta = o.delta;
    config.bf16 = o.bf16;
    config.dense = o.dense;
    config.seed = globals.seed;
    config.bootstrap = o.bootstrap;
    // Every output must be writable, and distinct from the others and from the data set, before
    // any work starts (--force replaces an earlier output, never this command's input).
    // Inputs: the data set and every --model that names a file (the others are recipes).
    std::vector<std::filesystem::path> inputs = {o.data};
    for (const std::string& text : o.models) {
      std::error_code error;
      if (std::filesystem::exists(text, error)) inputs.emplace_back(text);
    }
    io::check_outputs({o.out, o.csv, o.predictions}, inputs);
    for (const std::string& path : {o.out, o.csv, o.predictions}) {
      if (!path.empty()) io::check_can_write(path, overwrite);
    }
    // The checks and the memory estimate come before any generation or evaluation: a run that
    // cannot fit is refused with its estimate instead of being killed halfway.
    const std::optional<data::TaskSpec> spec = spec_from_flags(o, globals.seed);
    std::optional<data::Dataset> opened;
    if (!spec) opened.emplace(data::Dataset::open(o.data));
    const data::TaskSpec& shape = spec ? *spec : opened->spec();
    std::vector<model::ModelSource> models;
    for (const std::string& text : o.models) {
      models.push_back(model::ModelSource::resolve(text, static_cast<int>(shape.dim), globals.seed));
    }
    eval::validate(config, shape, models);
    if (spec) {
      try {
        data::check_can_generate_unnamed(*spec);  // before the memory line: one line either way
      } catch (const data::NoSpaceError& error) {
        throw no_space_error(error);
      }
    }
    // The task set is in this process's memory either way (a --data file is read, not mapped).
    runtime::check_memory(shape.dataset_bytes() +
                              eval::estimate_memory_bytes(shape, models, config, runtime::active_threads()),
                          "eval", "lower --tasks, --queries, --n (or the context's k) or --threads",
                          globals.memory_budget());
    const data::Dataset dataset = spec ? generate(*spec, globals.quiet) : std::move(*opened);

    const std::int64_t steps = static_cast<std::int64_t>(
        (o.n_grid.empty() ? 1 : o.n_grid.size()) * (models.size() + config.heads.size()));
    runtime::Progress progress("eval", "learner x n' steps", steps, !globals.quiet);
    eval::EvalResult result = eval::evaluate(dataset, models, config, progress.callback());
    progress.finish();
    result.data_source = o.data.empty() ? "generated" : o.data;
    if (!o.predictions.empty()) eval::check_scores_finite(result);  // before any output is written

    // All or nothing: every output is written in full before any of them appears.
    io::AtomicFile json(o.out, overwrite);
    json.write_at(0, eval::to_json(result).dump(2) + "\n");
    std::optional<io::AtomicFile> csv;
    if (!o.csv.empty()) csv.emplace(o.csv, overwrite).write_at(0, eval::to_csv(result));
    std::unique_ptr<io::SafetensorsWriter> predictions;
    if (!o.predictions.empty()) predictions = eval::stage_predictions(result, o.predictions, overwrite);
    // The table first: results that cannot reach standard output leave no file either.
    std::fputs(eval::to_table(result).c_str(), output());
    flush_output("; nothing was written");
    io::commit_together({&json, csv ? &*csv : nullptr, predictions ? &predictions->file() : nullptr});
  };
  return {app, run};
}

}  // namespace iclbench::cli

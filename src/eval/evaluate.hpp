#pragma once
// `iclbench eval`: in-context learners (transformers) against trained heads on one task set.
//
// For every learner and every prefix size n' of the grid: the query scores [T, M]; per task the
// error against the noiseless truth sign(w*.x) (and against the noisy labels when the data has
// label noise), the disagreement with every head, and for rotation-invariant inputs the exact
// error angle(w, w*)/pi of linear learners; across tasks the mean and the (1 - delta)-quantile
// with bootstrap intervals (metrics.hpp).
//
// A transformer's query score is tested for linearity in x_q with 2(d + 1) extra probe queries
// per prompt (prompts.hpp); when it is linear on every task, its weight vector gives the exact
// error too. Heads always train on all n' examples; the context policy decides what a
// transformer sees. Results become files and tables in report.hpp.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "data_gen/dataset.hpp"
#include "eval/context.hpp"
#include "eval/metrics.hpp"
#include "heads/heads.hpp"
#include "model/resolve.hpp"
#include "util/progress_callback.hpp"

namespace iclbench::eval {

struct EvalConfig {
  std::vector<heads::HeadSpec> heads;
  ContextSpec context;
  std::vector<std::int64_t> n_grid;  // prefix sizes n'; empty means {N}
  double delta = 0.05;
  bool bf16 = false;
  bool dense = false;  // model::EngineOptions::dense: no plan-time weight structure
  std::uint64_t seed = 0;
  int bootstrap = 1000;
};

struct Metric {
  std::vector<double> per_task;
  Summary summary;
};

// One learner at one prefix size n' of the grid.
struct PrefixResult {
  std::int64_t n = 0;         // examples available (the prefix size n')
  std::int64_t context = 0;   // examples in the learner's context (n' or k)
  std::vector<float> scores;  // [T, M]
  Metric err;
  std::optional<Metric> err_noisy;
  std::optional<Metric> exact_err;
  std::vector<std::pair<std::string, Metric>> dis;  // against each head, in the config's order
  // Tasks with at least one non-finite score (a diverging learner): such a score counts as a
  // wrong prediction, and the tasks are reported rather than silently averaged in.
  std::int64_t nonfinite_tasks = 0;
  // svm-hard only (empty otherwise), per task [T]: the fraction of the n' examples it
  // misclassifies (0 on separable data: it reached the ERM solution) and its geometric margin.
  std::vector<double> train_error, margin;
  // Linear learners (heads with a weight vector, transformers whose score was linear in x_q on
  // every task), per task [T][d]: w of the score w.x_q; empty otherwise.
  std::vector<std::vector<double>> weights;
  // Transformers: whether the query score was linear in x_q on every task.
  std::optional<bool> linear;
  double probe_residual = 0;  // largest relative residual of the linear fit
};

struct LearnerResult {
  std::string name;
  bool is_model = false;
  std::vector<PrefixResult> grid;             // one per entry of EvalResult::grid
  double seconds = 0;                         // forward passes or training + prediction
  double prompts = 0, tokens = 0, flops = 0;  // transformers only
};

struct EvalResult {
  data::TaskSpec data;
  std::string data_source;
  EvalConfig config;
  std::vector<std::string> models;      // the transformers as they were named (recipes or files)
  std::vector<std::int64_t> grid;       // the prefix sizes n'
  bool exact_applies = false;           // rotation-invariant inputs, no bias
  std::vector<LearnerResult> learners;  // transformers, then heads
  double seconds = 0;
  int threads = 0;
};

// Checks a run before any work: something to evaluate; every n' of the grid in [1, N]
// (util::ParameterError "n_grid"); delta and the bootstrap resamples (check_delta,
// check_resamples); every model an in-context learner for the data's d (std::invalid_argument).
// evaluate() calls it too.
void validate(const EvalConfig& config, const data::TaskSpec& data,
              std::span<const model::ModelSource> models);

// The name a model's results carry (LearnerResult::name): its config's name, or the text it was
// given as when the config has none.
std::string learner_name(const model::ModelSource& source);

// Peak bytes evaluate() allocates for a task set of this shape with `threads` TBB threads,
// beyond the task set itself: results, engine buffers (Engine::working_bytes), token chunks,
// the models' weights and head training copies. From the models' configs alone, so that a run
// that cannot fit is refused before anything is built.
std::uint64_t estimate_memory_bytes(const data::TaskSpec& data,
                                    std::span<const model::ModelSource> models,
                                    const EvalConfig& config, int threads);

// A predictions file (stage_predictions) holds finite scores only, so that whatever reads it
// gets numbers (a weight of 3e38 once wrote a file of inf scores with exit 0). A
// diverging learner, or finite weights that overflow f32 in the forward pass, gives inf or NaN
// scores: evaluate() reports them (PrefixResult::nonfinite_tasks, counted as
// errors), and this throws std::invalid_argument naming the model (and the file or recipe it was
// given as), n' and the first prompt (task, query) whose score is not finite. Call it before
// writing any output of a run that dumps predictions.
void check_scores_finite(const EvalResult& result);

// Whether the exact error angle(w, w*)/pi applies to a linear learner on such tasks: inputs
// whose law is invariant under rotations (gaussian, sphere, scaled) and no bias.
bool rotation_invariant(const data::TaskSpec& spec);

// Builds every model, then evaluates. `progress` hears of each (learner, n') step.
EvalResult evaluate(const data::Dataset& dataset, std::span<const model::ModelSource> models,
                    const EvalConfig& config, const util::ProgressCallback& progress = {});

// One transformer under retrieve:k for each k of `k_grid` (increasing) at one prefix size n'
// (config.n_grid of at most one entry; config.context is ignored): element i equals
// evaluate(dataset, {model}, config with context retrieve:k_grid[i]) (timings aside), with each query's
// neighbours ordered once for every k (prompts.hpp, run_transformer_retrieval). Throws as
// evaluate() does for each k.
std::vector<EvalResult> evaluate_retrieval(const data::Dataset& dataset,
                                           const model::ModelSource& model, const EvalConfig& config,
                                           std::span<const std::int64_t> k_grid);

}  // namespace iclbench::eval

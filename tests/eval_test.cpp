// Evaluation: metrics, intervals, context selection, and evaluate() end to end.

#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "data_gen/dataset.hpp"
#include "eval/context.hpp"
#include "eval/evaluate.hpp"
#include "eval/metrics.hpp"
#include "eval/prompts.hpp"
#include "eval/report.hpp"
#include "model/engine.hpp"
#include "model/reference.hpp"
#include "model/resolve.hpp"
#include "runtime/memory.hpp"
#include "util/errors.hpp"
#include "util/philox.hpp"

namespace iclbench::eval {
namespace {

namespace fs = std::filesystem;

data::Dataset make_dataset(const std::string& name, int d, int n, int m, int tasks, double noise = 0,
                           std::uint64_t seed = 3) {
  data::TaskSpec spec;
  spec.dim = d;
  spec.n_examples = n;
  spec.n_queries = m;
  spec.n_tasks = tasks;
  spec.noise = noise;
  spec.seed = seed;
  const fs::path path = fs::path(ICLBENCH_TEST_TMPDIR) / (name + ".safetensors");
  data::WriteOptions options;
  options.overwrite = io::Overwrite::kAllow;
  data::write_dataset(spec, path, options);
  return data::Dataset::open(path);
}

// The transformers named by `texts`, for the data set's d (as the command line resolves them).
std::vector<model::ModelSource> models(const std::vector<std::string>& texts, std::int64_t d,
                                       std::uint64_t seed = 0) {
  std::vector<model::ModelSource> sources;
  for (const std::string& text : texts) {
    sources.push_back(model::ModelSource::resolve(text, static_cast<int>(d), seed));
  }
  return sources;
}

const LearnerResult& learner(const EvalResult& result, const std::string& name) {
  for (const LearnerResult& l : result.learners)
    if (l.name == name) return l;
  throw std::runtime_error("no learner " + name);
}

const Metric& dis(const PrefixResult& point, const std::string& head) {
  for (const auto& [name, metric] : point.dis)
    if (name == head) return metric;
  throw std::runtime_error("no head " + head);
}

TEST(Metrics, NormalQuantileAndUpperQuantile) {
  EXPECT_NEAR(normal_quantile(0.975), 1.959963984540054, 1e-12);
  EXPECT_NEAR(normal_quantile(0.5), 0.0, 1e-14);
  EXPECT_NEAR(normal_quantile(1e-10), -6.361340902404056, 1e-9);
  // Rank ceil(0.9 * 10) = 9 of the sorted values 1..10.
  EXPECT_EQ(upper_quantile({5, 1, 9, 3, 7, 2, 10, 4, 8, 6}, 0.1), 9);
  EXPECT_EQ(upper_quantile({5, 1, 9}, 0.5), 5);
  EXPECT_NEAR(angle_error(std::vector<double>{1, 0}, std::vector<float>{0, 1}), 0.5, 1e-15);
  EXPECT_NEAR(angle_error(std::vector<double>{1, 1}, std::vector<float>{1, 0}), 0.25, 1e-15);
}

TEST(Metrics, WilsonIntervalCoversAtItsNominalRate) {
  // 4000 binomial experiments per p: coverage within 3 standard errors (0.0103) of 0.95. Wilson
  // is known to hover near its nominal level, dipping a little for small n p.
  for (const auto& [p, n] : {std::pair{0.05, 200}, {0.3, 50}, {0.5, 512}}) {
    util::DrawSequence draws(99, 0, static_cast<std::uint32_t>(n), util::Stream::kBootstrap);
    int covered = 0;
    const int experiments = 4000;
    for (int e = 0; e < experiments; ++e) {
      int successes = 0;
      for (int i = 0; i < n; ++i) successes += draws.uniform() < p;
      const Interval interval = wilson_interval(successes, n);
      covered += interval.lo <= p && p <= interval.hi;
    }
    EXPECT_NEAR(covered / static_cast<double>(experiments), 0.95, 0.012 * 3) << "p=" << p << " n=" << n;
  }
}

TEST(Metrics, BootstrapIntervalOfTheMeanCoversAtAboutItsNominalRate) {
  // Per-task errors: binomial(64, p_t)/64 with p_t uniform on [0, 0.2]; true mean 0.1. The
  // percentile bootstrap of the mean over 100 tasks should cover it ~95% of the time (it runs a
  // little low for small samples; 400 repetitions give a standard error of 0.011).
  int covered = 0;
  const int repetitions = 400;
  for (int r = 0; r < repetitions; ++r) {
    util::DrawSequence draws(7, static_cast<std::uint32_t>(r), 0, util::Stream::kContextInput);
    std::vector<double> per_task(100);
    for (double& value : per_task) {
      const double p = 0.2 * draws.uniform();
      int wrong = 0;
      for (int q = 0; q < 64; ++q) wrong += draws.uniform() < p;
      value = wrong / 64.0;
    }
    const Summary summary = summarize(per_task, 0.05, 1000 + r, 500);
    covered += summary.mean_ci.lo <= 0.1 && 0.1 <= summary.mean_ci.hi;
  }
  EXPECT_NEAR(covered / static_cast<double>(repetitions), 0.95, 0.04);
}

TEST(Context, RandomSubsetsAreDistinctSortedAndSeeded) {
  const auto subset = random_subset(5, 3, 100, 10);
  ASSERT_EQ(subset.size(), 10u);
  EXPECT_TRUE(std::is_sorted(subset.begin(), subset.end()));
  EXPECT_EQ(std::set<std::int64_t>(subset.begin(), subset.end()).size(), 10u);
  EXPECT_EQ(subset, random_subset(5, 3, 100, 10));
  EXPECT_NE(subset, random_subset(5, 4, 100, 10));
  EXPECT_EQ(random_subset(5, 3, 4, 10).size(), 4u);  // k > n: all of them
  EXPECT_THROW(parse_context("random:0"), ContextError);
  EXPECT_THROW(parse_context("nearest:3"), ContextError);
  EXPECT_EQ(parse_context("retrieve:8").k, 8);
}

TEST(Context, RetrieveFindsTheTrueNearestByCosine) {
  const int d = 6, n = 300, m = 40, k = 7;
  std::vector<float> x(n * d), queries(m * d);
  util::DrawSequence draws(11, 0, 0, util::Stream::kContextInput);
  for (float& value : x) value = static_cast<float>(draws.normal());
  for (float& value : queries) value = static_cast<float>(draws.normal());
  const auto nearest = nearest_by_cosine(x, n, queries, m, d, k);
  for (int q = 0; q < m; ++q) {
    std::vector<std::pair<double, int>> cosines;
    for (int i = 0; i < n; ++i) {
      double dot = 0, xn = 0, qn = 0;
      for (int j = 0; j < d; ++j) {
        dot += static_cast<double>(x[i * d + j]) * queries[q * d + j];
        xn += static_cast<double>(x[i * d + j]) * x[i * d + j];
        qn += static_cast<double>(queries[q * d + j]) * queries[q * d + j];
      }
      cosines.push_back({-dot / std::sqrt(xn * qn), i});
    }
    std::sort(cosines.begin(), cosines.end());
    for (int i = 0; i < k; ++i) EXPECT_EQ(nearest[q * k + i], cosines[i].second) << "query " << q << " rank " << i;
  }
}

// retrieve:k over a k grid orders each query's neighbours once: every k's context must be the
// direct per-k selection (the first k of the deepest order), and every k's scores and metrics
// those of one run per k, bit for bit, however the tasks are cut into blocks.
TEST(Context, RetrievalOverAKGridEqualsOneRunPerK) {
  const int d = 5, n = 120, m = 30, tasks = 5;
  const data::Dataset dataset = make_dataset("retrieve_grid", d, n, m, tasks);
  const std::vector<std::int64_t> grid = {1, 3, 8, 40, 120};
  for (std::int64_t task = 0; task < tasks; ++task) {
    const auto deepest = nearest_by_cosine(dataset.x(task), n, dataset.x_query(task), m, d, n);
    for (const std::int64_t k : grid) {
      const auto direct = nearest_by_cosine(dataset.x(task), n, dataset.x_query(task), m, d, k);
      for (int q = 0; q < m; ++q)
        for (std::int64_t i = 0; i < k; ++i)
          ASSERT_EQ(direct[static_cast<std::size_t>(q * k + i)], deepest[static_cast<std::size_t>(q * n + i)])
              << "task " << task << " k " << k << " query " << q << " rank " << i;
    }
  }
  const model::ModelSource source = model::ModelSource::resolve("gd-ls:L=1", d, 0);
  model::Model built = source.build();
  const model::Engine engine(std::move(built.config), std::move(built.weights), {});
  for (const std::int64_t block : {0, 1, 2}) {
    const std::vector<TransformerRun> runs = run_transformer_retrieval(engine, dataset, grid, 7, n, block);
    ASSERT_EQ(runs.size(), grid.size());
    for (std::size_t i = 0; i < grid.size(); ++i) {
      const TransformerRun one =
          run_transformer(engine, dataset, parse_context("retrieve:" + std::to_string(grid[i])), 7, n);
      EXPECT_EQ(runs[i].scores, one.scores) << "k " << grid[i] << ", blocks of " << block;
      EXPECT_EQ(runs[i].context, one.context);
      EXPECT_EQ(runs[i].tokens, one.tokens);
      EXPECT_EQ(runs[i].flops, one.flops);
    }
  }
  EvalConfig config;
  config.heads = heads::parse_heads("svm-hard");
  config.bootstrap = kMinResamples;
  const std::vector<EvalResult> results = evaluate_retrieval(dataset, source, config, grid);
  ASSERT_EQ(results.size(), grid.size());
  for (std::size_t i = 0; i < grid.size(); ++i) {
    EvalConfig k_config = config;
    k_config.context = parse_context("retrieve:" + std::to_string(grid[i]));
    const EvalResult one = evaluate(dataset, std::span(&source, 1), k_config);
    for (std::size_t l = 0; l < one.learners.size(); ++l) {
      const PrefixResult &a = results[i].learners[l].grid.front(), &b = one.learners[l].grid.front();
      EXPECT_EQ(a.scores, b.scores);
      EXPECT_EQ(a.err.per_task, b.err.per_task);
      ASSERT_EQ(a.dis.size(), b.dis.size());
      for (std::size_t h = 0; h < a.dis.size(); ++h) EXPECT_EQ(a.dis[h].second.per_task, b.dis[h].second.per_task);
    }
  }
  EXPECT_THROW(run_transformer_retrieval(engine, dataset, std::vector<std::int64_t>{8, 3}, 7, n),
               std::invalid_argument);
}

TEST(Evaluate, OneStepGdLsPredictsLikeTheAveragingHead) {
  const data::Dataset dataset = make_dataset("avg", 8, 64, 200, 20);
  EvalConfig config;
  config.heads = heads::parse_heads("avg");
  config.bootstrap = 100;
  const EvalResult result = evaluate(dataset, models({"gd-ls:L=1,eta=0.7"}, dataset.dim()), config);
  const PrefixResult& point = learner(result, "gd-ls:L=1,eta=0.7").grid.back();
  EXPECT_EQ(dis(point, "avg").summary.mean, 0.0);
  EXPECT_TRUE(point.linear.value());
  EXPECT_LT(point.probe_residual, 1e-5);
  // Scores are eta/n times the averaging head's w.x (the head itself reports cos(w, x), which is
  // invariant to the scale of x: heads::predict).
  const PrefixResult& avg = learner(result, "avg").grid.back();
  const std::size_t m = static_cast<std::size_t>(dataset.n_queries()), d = static_cast<std::size_t>(dataset.dim());
  for (std::size_t i = 0; i < point.scores.size(); ++i) {
    const std::size_t task = i / m, q = i % m;
    const auto query = dataset.x_query(static_cast<std::int64_t>(task)).subspan(q * d, d);
    double raw = 0, norm_w = 0, norm_x = 0;
    for (std::size_t j = 0; j < d; ++j) {
      raw += avg.weights[task][j] * query[j];
      norm_w += avg.weights[task][j] * avg.weights[task][j];
      norm_x += static_cast<double>(query[j]) * query[j];
    }
    ASSERT_NEAR(point.scores[i], raw * 0.7 / 64, 1e-5 * (1 + std::abs(raw)));
    // The head's own score, a cosine: f32 rounding of the score only (6e-8 relative).
    ASSERT_NEAR(avg.scores[i], raw / std::sqrt(norm_w * norm_x), 1e-6);
  }
}

TEST(Evaluate, GdLsConvergesToLeastSquares) {
  const data::Dataset dataset = make_dataset("ls", 8, 64, 500, 10, 0.1);
  EvalConfig config;
  config.heads = heads::parse_heads("ls");
  config.bootstrap = 100;
  const EvalResult result =
      evaluate(dataset, models({"gd-ls:L=5,eta=0.5", "gd-ls:L=400,eta=0.5"}, dataset.dim()), config);
  const double few = dis(learner(result, "gd-ls:L=5,eta=0.5").grid.back(), "ls").summary.mean;
  const double many = dis(learner(result, "gd-ls:L=400,eta=0.5").grid.back(), "ls").summary.mean;
  // eta lambda_max(S) < 2 here, and (1 - eta lambda_min)^400 is ~1e-30: GD has reached the
  // least-squares solution up to f32 rounding.
  EXPECT_LT(many, 0.002);
  EXPECT_GT(few, many);
  const auto& exact_gd = learner(result, "gd-ls:L=400,eta=0.5").grid.back().exact_err->per_task;
  const auto& exact_ls = learner(result, "ls").grid.back().exact_err->per_task;
  for (std::size_t t = 0; t < exact_gd.size(); ++t) EXPECT_NEAR(exact_gd[t], exact_ls[t], 1e-4);
}

TEST(Evaluate, ExactAngleErrorMatchesMonteCarlo) {
  const data::Dataset dataset = make_dataset("exact", 10, 40, 4000, 50);
  EvalConfig config;
  config.heads = heads::parse_heads("avg,ls,logistic");
  config.bootstrap = 100;
  const EvalResult result = evaluate(dataset, {}, config);
  EXPECT_TRUE(result.exact_applies);
  for (const LearnerResult& head : result.learners) {
    const PrefixResult& point = head.grid.back();
    ASSERT_TRUE(point.exact_err.has_value());
    // The Monte Carlo mean over T tasks of M queries each has variance sum_t e_t(1 - e_t)/M / T^2.
    double variance = 0;
    for (double e : point.exact_err->per_task) variance += e * (1 - e) / 4000.0;
    const double sd = std::sqrt(variance) / 50;
    EXPECT_NEAR(point.err.summary.mean, point.exact_err->summary.mean, 4 * sd) << head.name;
  }
}

TEST(Evaluate, IdenticalAcrossThreadCountsAndPolicies) {
  const data::Dataset dataset = make_dataset("threads", 5, 60, 30, 12, 0.1);
  for (const char* context : {"full", "random:20", "retrieve:9", "ensemble:8"}) {
    EvalConfig config;
    config.heads = heads::parse_heads("logistic,svm,knn");
    config.context = parse_context(context);
    config.n_grid = {20, 60};
    config.bootstrap = 200;
    config.seed = 4;
    auto run = [&](int threads) {
      tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
      return evaluate(dataset, models({"gd-hinge:L=30,eta=1", "kernel:beta=1"}, dataset.dim()), config);
    };
    const EvalResult one = run(1), two = run(2);
    ASSERT_EQ(one.learners.size(), two.learners.size());
    for (std::size_t l = 0; l < one.learners.size(); ++l) {
      for (std::size_t g = 0; g < 2; ++g) {
        const PrefixResult& a = one.learners[l].grid[g];
        const PrefixResult& b = two.learners[l].grid[g];
        EXPECT_EQ(a.scores, b.scores) << context << " " << one.learners[l].name;
        EXPECT_EQ(a.err.summary.mean_ci.lo, b.err.summary.mean_ci.lo);
        EXPECT_EQ(a.err.summary.quantile_ci.hi, b.err.summary.quantile_ci.hi);
      }
    }
    // Noisy labels give a second error, and retrieval has no probe.
    EXPECT_TRUE(one.learners[0].grid.back().err_noisy.has_value());
    EXPECT_EQ(one.learners[0].grid.back().linear.has_value(), std::string(context) != "retrieve:9");
    EXPECT_FALSE(one.learners[1].grid.back().linear.value_or(false));  // the kernel is not linear
  }
}

// ensemble:k is the mean of the transformer's runs on the windows of k, held against the slow
// twin (the direct GD algorithm in double precision) on each window: 50 examples in windows of
// 16 are 16, 16, 16 and a short last window of 2. gd-hinge is not linear in the labels, so a
// run on the whole of S, or windows weighted by their size, would differ.
TEST(Evaluate, EnsembleIsTheMeanOfPerWindowRuns) {
  const data::Dataset dataset = make_dataset("ensemble", 6, 50, 40, 5);
  EvalConfig config;
  config.context = parse_context("ensemble:16");
  config.bootstrap = 100;
  const std::string text = "gd-hinge:L=20,eta=2,tau=0.5";
  const EvalResult result = evaluate(dataset, models({text}, dataset.dim()), config);
  const PrefixResult& point = learner(result, text).grid.back();
  EXPECT_EQ(point.context, 16);
  EXPECT_TRUE(point.linear.value());
  const model::ConstructionSpec spec = model::parse_construction(text);
  const int d = 6;
  const std::int64_t m = 40;
  double worst = 0;
  for (std::int64_t task = 0; task < 5; ++task) {
    const auto x = dataset.x(task), y = dataset.y(task), q = dataset.x_query(task);
    model::MatrixD queries(m, d);
    for (std::int64_t i = 0; i < m * d; ++i) queries(i / d, i % d) = q[static_cast<std::size_t>(i)];
    Eigen::VectorXd mean = Eigen::VectorXd::Zero(m);
    for (std::int64_t offset = 0; offset < 50; offset += 16) {
      const std::int64_t size = std::min<std::int64_t>(16, 50 - offset);
      model::MatrixD cx(size, d);
      Eigen::VectorXd cy(size);
      for (std::int64_t i = 0; i < size; ++i) {
        for (int c = 0; c < d; ++c) cx(i, c) = x[static_cast<std::size_t>((offset + i) * d + c)];
        cy[i] = y[static_cast<std::size_t>(offset + i)];
      }
      mean += model::construction_scores(spec, cx, cy, queries) / 4.0;
    }
    for (std::int64_t j = 0; j < m; ++j) {
      // f32 engine against f64 twin: 20 steps of sums over <= 16 terms of O(1) products keep the
      // relative rounding below ~1e-5; 1e-4 of the score's scale leaves a margin of 10.
      const double tolerance = 1e-4 * (1 + std::abs(mean[j]));
      worst = std::max(worst, std::abs(point.scores[static_cast<std::size_t>(task * m + j)] - mean[j]) / tolerance);
    }
  }
  EXPECT_LE(worst, 1.0);
}

TEST(Evaluate, DivergingLearnersAreReportedNotAveraged) {
  const data::Dataset dataset = make_dataset("diverge", 6, 50, 20, 8);
  EvalConfig config;
  config.heads = heads::parse_heads("avg");
  config.bootstrap = 50;
  // eta lambda_max >> 2: the first overflows
  const EvalResult result = evaluate(dataset, models({"gd-ls:L=400,eta=50", "gd-ls:L=1"}, dataset.dim()), config);
  const PrefixResult& diverged = result.learners[0].grid.back();
  EXPECT_EQ(diverged.nonfinite_tasks, 8);
  EXPECT_EQ(diverged.err.summary.mean, 1.0);  // no finite prediction: every query wrong
  EXPECT_EQ(result.learners[1].grid.back().nonfinite_tasks, 0);
  EXPECT_NE(to_table(result).find("non-finite scores in 8 of 8 tasks"), std::string::npos);
  EXPECT_EQ(to_json(result)["learners"]["gd-ls:L=400,eta=50"]["nonfinite_tasks"], 8);
}

TEST(Evaluate, RejectsBadGridsModelsAndSummaryParameters) {
  const data::Dataset dataset = make_dataset("bad", 4, 10, 5, 2);
  EvalConfig config;
  config.heads = heads::parse_heads("avg");
  auto rejects = [&](const EvalConfig& bad, const std::string& parameter) {
    try {
      evaluate(dataset, {}, bad);
      ADD_FAILURE() << "accepted a bad " << parameter;
    } catch (const util::ParameterError& error) {
      EXPECT_EQ(error.parameter(), parameter) << error.what();
    }
  };
  EXPECT_NO_THROW(validate(config, dataset.spec(), {}));
  config.n_grid = {0};
  rejects(config, "n_grid");
  config.n_grid = {11};
  rejects(config, "n_grid");
  config.n_grid = {10};
  EXPECT_NO_THROW(validate(config, dataset.spec(), {}));
  for (double delta : {0.0, 1.0, std::nan("")}) {
    EvalConfig bad = config;
    bad.delta = delta;
    rejects(bad, "delta");
  }
  // The one range of bootstrap resamples, for eval and the bounds sweep alike.
  for (int resamples : {kMinResamples - 1, kMaxResamples + 1}) {
    EvalConfig bad = config;
    bad.bootstrap = resamples;
    rejects(bad, "bootstrap");
  }
  for (int resamples : {kMinResamples, kMaxResamples}) {
    EvalConfig good = config;
    good.bootstrap = resamples;
    EXPECT_NO_THROW(validate(good, dataset.spec(), {}));
  }
  EXPECT_THROW(evaluate(dataset, models({"encoder:D=8,H=2,F=8,layers=1"}, 4), config), std::invalid_argument);
  EXPECT_THROW(evaluate(dataset, {}, EvalConfig{}), std::invalid_argument);  // nothing to evaluate
}

// The memory check: refuses above the budget with the estimate and the remedy in the message,
// prints the estimate for large runs unless quiet, and says nothing for small ones.
TEST(Memory, CheckRefusesAboveTheBudgetAndReportsLargeRuns) {
  runtime::MemoryBudget budget;
  budget.limit = 5'000'000'000;
  try {
    runtime::check_memory(6'000'000'000, "eval", "lower --tasks", budget);
    ADD_FAILURE() << "6 GB passed a 5 GB budget";
  } catch (const std::invalid_argument& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("eval needs an estimated 6 GB of memory, but 5 GB is allowed by the memory limit"),
              std::string::npos) << message;
    EXPECT_NE(message.find("lower --tasks"), std::string::npos) << message;
  }
  testing::internal::CaptureStderr();
  runtime::check_memory(2'000'000'000, "bounds", "", budget);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "bounds: memory estimate 2 GB (5 GB allowed by the memory limit)\n");
  // A cap from a flag is named as the flag's cap, not as memory the machine has.
  runtime::MemoryBudget flag_budget = budget;
  flag_budget.limit_name = "--max-memory";
  testing::internal::CaptureStderr();
  runtime::check_memory(2'000'000'000, "speed", "", flag_budget);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "speed: memory estimate 2 GB (the --max-memory cap of 5 GB)\n");
  testing::internal::CaptureStderr();
  runtime::check_memory(999'000'000, "bounds", "", budget);
  budget.quiet = true;
  runtime::check_memory(2'000'000'000, "bounds", "", budget);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  // Without a limit the machine's available memory is the budget; this machine has some.
  ASSERT_TRUE(runtime::available_memory_bytes().has_value());
  EXPECT_GT(*runtime::available_memory_bytes(), 0u);
  EXPECT_THROW(runtime::check_memory(std::uint64_t{1} << 62, "eval", "", runtime::MemoryBudget{}),
               std::invalid_argument);
}

// The estimate grows with what the run holds: more tasks, longer contexts, more threads (score
// tiles per thread), and a softmax learner's tiles dwarf a linear one's at long contexts.
TEST(Memory, EvalEstimateFollowsTheRunsShape) {
  data::TaskSpec spec;
  spec.dim = 8;
  spec.n_examples = 20000;
  spec.n_queries = 16;
  spec.n_tasks = 4;
  const EvalConfig config;
  const auto linear = models({"gd-ls:L=1"}, spec.dim), softmax = models({"kernel:beta=1"}, spec.dim);
  const auto base = estimate_memory_bytes(spec, softmax, config, 1);
  EXPECT_GT(base, estimate_memory_bytes(spec, linear, config, 1));
  // Two threads: one more thread's scratch. The fused softmax attention keeps no [256, 20000]
  // f32 score tile (20.5 MB) per thread, only its ~31 KB scratchpad and the tile's normed,
  // converted and MLP rows, so the second thread costs well under 1% of a score tile.
  const double per_thread = static_cast<double>(estimate_memory_bytes(spec, softmax, config, 2) - base);
  EXPECT_GT(per_thread, 0.0);
  EXPECT_LT(per_thread, 0.01 * 256.0 * 20000 * 4);
  data::TaskSpec more_tasks = spec;
  more_tasks.n_tasks = 400;
  EXPECT_GT(estimate_memory_bytes(more_tasks, softmax, config, 1), base);
}

}  // namespace
}  // namespace iclbench::eval

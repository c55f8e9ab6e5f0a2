// The oneDNN engine against the Eigen reference forward, the Q (K^T V) association against the
// explicit scores, the constructions run by the engine against their algorithms, determinism
// across threads and batchings, and the thread budget.

#include <gtest/gtest.h>
#include <malloc.h>
#include <tbb/global_control.h>

#include <cmath>
#include <tuple>

#include "model/constructions.hpp"
#include "model/engine.hpp"
#include "model/reference.hpp"
#include "util/philox.hpp"

namespace iclbench::model {
namespace {

constexpr double kEpsF32 = 0x1p-24;  // unit roundoff of f32
constexpr double kEpsBf16 = 0x1p-8;  // unit roundoff of bf16 (8 significant bits)

std::vector<float> random_tokens(std::int64_t count, std::uint64_t seed, double scale = 1.0) {
  std::vector<float> values(static_cast<std::size_t>(count));
  util::DrawSequence draws(seed, 0, 0, util::Stream::kContextInput);
  for (float& value : values) value = static_cast<float>(scale * draws.normal());
  return values;
}

MatrixD prompt_matrix(const std::vector<float>& tokens, std::int64_t prompt, std::int64_t t,
                      std::int64_t width) {
  MatrixD matrix(t, width);
  for (std::int64_t i = 0; i < t * width; ++i) matrix.data()[i] = tokens[prompt * t * width + i];
  return matrix;
}

// Largest |engine - reference| over a batch, relative to max(1, max |reference|).
double relative_error(const ModelConfig& config, const Weights& weights, const Engine& engine,
                      std::int64_t prompts, std::int64_t t, std::int64_t n, std::uint64_t seed) {
  const std::int64_t width = config.width;
  const std::vector<float> tokens = random_tokens(prompts * t * width, seed);
  std::vector<float> out(tokens.size());
  engine.forward(tokens, prompts, t, n, out);
  double worst = 0;
  for (std::int64_t b = 0; b < prompts; ++b) {
    const MatrixD expected = reference_forward(config, weights, prompt_matrix(tokens, b, t, width), n);
    const MatrixD found = prompt_matrix(out, b, t, width);
    const double scale = std::max(1.0, expected.cwiseAbs().maxCoeff());
    worst = std::max(worst, (found - expected).cwiseAbs().maxCoeff() / scale);
    EXPECT_TRUE(found.allFinite());
  }
  return worst;
}

// One case of the matrix: attention kind x mask x attention norm x MLP activation.
using Case = std::tuple<AttentionKind, Mask, bool, int>;  // activation: -1 = no MLP

ModelConfig config_for(const Case& c, int width) {
  const auto [kind, mask, norm, activation] = c;
  ModelConfig config;
  config.width = width;
  for (int layer_index = 0; layer_index < 2; ++layer_index) {
    LayerConfig layer;
    layer.attention_norm = norm;
    layer.attention = kind;
    layer.heads = 2;
    layer.qk_dim = 5;
    layer.v_dim = 3;
    // Softmax scores scaled like 1/sqrt(dk); linear and ReLU scores averaged over the keys on
    // the first layer and not on the second, so both forms are exercised.
    layer.scale = kind == AttentionKind::kSoftmax ? 0.45f : 0.6f;
    layer.mean_over_keys = kind != AttentionKind::kSoftmax && layer_index == 0;
    layer.mask = mask;
    layer.mlp_norm = norm;
    layer.mlp_hidden = activation < 0 ? 0 : 7;
    layer.activation = activation < 0 ? Activation::kNone : static_cast<Activation>(activation);
    layer.loop = layer_index == 0 ? 1 : 2;  // the second layer is looped
    config.layers.push_back(layer);
  }
  // Mean over keys must be the same for every causal layer that shares a mask variant; the
  // engine keeps one mask per variant, so mixing them is part of the test.
  return config;
}

// Error bound, as a random walk of rounding errors. One matmul with operands rounded to unit
// roundoff u (both operands: relative 2u per product) and f32 accumulation over K terms errs, relative
// to its result (~sqrt(K) |term| for random data), by about 2u + eps_f32 sqrt(K/2) (sequential
// summation: partial sums grow like sqrt(j)). An output of the test models passes through 12
// matmuls (2 layers, the second looped: 3 passes of projection, scores, mix, output / MLP up,
// down); independent errors add like sqrt(12). We allow a factor 4 on top for the Jacobians of
// random layers and LayerNorm. For f32 and K = 300 that is 1.1e-5 (measured: ~1e-6); for bf16
// it is 0.11 (measured: up to 0.015).
double error_bound(double unit_roundoff, std::int64_t k) {
  return 4 * std::sqrt(12.0) *
         (2 * unit_roundoff + kEpsF32 * std::sqrt(static_cast<double>(k) / 2));
}
double f32_bound(std::int64_t k) { return error_bound(kEpsF32, k); }
double bf16_bound(std::int64_t k) { return error_bound(kEpsBf16, k); }

class EngineMatchesReference : public ::testing::TestWithParam<Case> {};

TEST_P(EngineMatchesReference, F32OnAwkwardShapes) {
  const int width = 13;  // odd, not a multiple of 16
  const ModelConfig config = config_for(GetParam(), width);
  const Weights weights = random_weights(config, 11);
  // The fused attention kernel (the default) and the three ops it replaced.
  for (const bool unfused : {false, true}) {
    EngineOptions options;
    options.unfused_attention = unfused;
    const Engine engine(config, weights, options);
    // (prompts, T, n): one context example and one query; odd sizes; more rows than a tile.
    for (const auto& [prompts, t, n] : {std::tuple<int, int, int>{2, 2, 1}, {3, 23, 17}, {2, 300, 211}}) {
      const double error = relative_error(config, weights, engine, prompts, t, n, 5 + t);
      EXPECT_LE(error, f32_bound(std::max(t, width))) << "T=" << t << " n=" << n << " unfused=" << unfused;
    }
  }
}

TEST_P(EngineMatchesReference, Bf16WithinItsWiderBound) {
  const int width = 13;
  const ModelConfig config = config_for(GetParam(), width);
  const Weights weights = random_weights(config, 12);
  for (const bool unfused : {false, true}) {
    EngineOptions options;
    options.bf16 = true;
    options.unfused_attention = unfused;
    const Engine engine(config, weights, options);
    for (const auto& [prompts, t, n] : {std::tuple<int, int, int>{2, 3, 1}, {2, 70, 50}}) {
      const double error = relative_error(config, weights, engine, prompts, t, n, 7 + t);
      EXPECT_LE(error, bf16_bound(std::max(t, width))) << "T=" << t << " n=" << n << " unfused=" << unfused;
    }
    // ... and it is not secretly running in f32.
    for (const auto& [op, implementation] : engine.implementations(70, 50)) {
      if (op == "projection" || op == "mlp") {
        EXPECT_NE(implementation.find("bf16"), std::string::npos) << op << ": " << implementation;
      }
    }
  }
}

// Which attention path each kind and mask takes, fused by default, as `speed` reports it.
TEST(Engine, ReportsItsAttentionPath) {
  for (const AttentionKind kind : {AttentionKind::kSoftmax, AttentionKind::kLinear, AttentionKind::kRelu}) {
    for (const Mask mask : {Mask::kIcl, Mask::kCausal}) {
      const ModelConfig config = config_for({kind, mask, true, 1}, 13);
      const Weights weights = random_weights(config, 3);
      const bool keys_times_values = kind == AttentionKind::kLinear && mask == Mask::kIcl;
      EngineOptions options;
      EXPECT_EQ(Engine(config, weights, options).implementations(20, 10).at("attention"),
                keys_times_values ? "keys_times_values" : "fused");
      options.unfused_attention = true;
      options.explicit_linear_attention = true;
      EXPECT_EQ(Engine(config, weights, options).implementations(20, 10).at("attention"), "explicit_scores");
    }
  }
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  const auto [kind, mask, norm, activation] = info.param;
  return std::string(to_string(kind)) + "_" + std::string(to_string(mask)) + (norm ? "_norm" : "") +
         (activation < 0 ? "_noMLP" : "_" + std::string(to_string(static_cast<Activation>(activation))));
}

INSTANTIATE_TEST_SUITE_P(
    AllKinds, EngineMatchesReference,
    ::testing::Combine(::testing::Values(AttentionKind::kSoftmax, AttentionKind::kLinear,
                                         AttentionKind::kRelu),
                       ::testing::Values(Mask::kIcl, Mask::kCausal), ::testing::Bool(),
                       ::testing::Values(-1, 0, 1, 2)),
    case_name);

TEST(Engine, MlpOnlyLayersRun) {
  ModelConfig config;
  config.width = 9;
  LayerConfig layer;
  layer.mlp_norm = true;
  layer.mlp_hidden = 31;
  layer.activation = Activation::kGelu;
  config.layers = {layer};
  const Weights weights = random_weights(config, 3);
  const Engine engine(config, weights);
  EXPECT_LE(relative_error(config, weights, engine, 3, 40, 40, 1), f32_bound(40));
}

TEST(Engine, QueriesTimesKeysValuesEqualsExplicitScores) {
  const Model model = construct(parse_construction("gd++:L=3,eta=0.5,gamma=0.1"), 11);
  const Engine fast(model.config, model.weights);
  EngineOptions explicit_options;
  explicit_options.explicit_linear_attention = true;
  const Engine slow(model.config, model.weights, explicit_options);
  EXPECT_NE(fast.implementations(400, 300).count("keys_times_values"), 0u);
  EXPECT_EQ(slow.implementations(400, 300).count("keys_times_values"), 0u);
  for (const auto& [t, n] : {std::pair<int, int>{2, 1}, {400, 300}}) {
    const std::vector<float> tokens = random_tokens(3 * t * model.config.width, 9);
    std::vector<float> a(tokens.size()), b(tokens.size());
    fast.forward(tokens, 3, t, n, a);
    slow.forward(tokens, 3, t, n, b);
    double worst = 0, scale = 1;
    for (std::size_t i = 0; i < a.size(); ++i) {
      worst = std::max(worst, static_cast<double>(std::abs(a[i] - b[i])));
      scale = std::max(scale, static_cast<double>(std::abs(b[i])));
    }
    // Both are exact in exact arithmetic; they differ by the rounding of two f32 contractions of
    // length n (K^T V, then Q M) versus two of lengths dk and n, times 3 layers.
    EXPECT_LE(worst / scale, 3 * 2 * 8 * kEpsF32 * std::log2(n + 1.0) * 11) << "T=" << t;
  }
}

// A separable task as icl tokens.
struct IclTask {
  std::vector<float> x, y, queries;
};
IclTask make_task(int d, int n, int m, std::uint64_t seed) {
  IclTask task{random_tokens(n * d, seed), std::vector<float>(n), random_tokens(m * d, seed + 1)};
  const std::vector<float> w = random_tokens(d, seed + 2);
  for (int i = 0; i < n; ++i) {
    double dot = 0;
    for (int j = 0; j < d; ++j) dot += w[j] * task.x[i * d + j];
    task.y[i] = dot >= 0 ? 1.0f : -1.0f;
  }
  return task;
}

MatrixD as_matrix(const std::vector<float>& values, int rows, int cols) {
  MatrixD matrix(rows, cols);
  for (int i = 0; i < rows * cols; ++i) matrix.data()[i] = values[i];
  return matrix;
}

// The engine, in f32, runs each construction's algorithm: its query scores equal the direct
// weight-space computation in double. The step maps of these GD variants are non-expansive for
// the learning rates used (eta lambda_max(S) < 2 on the active set), so the f32 rounding of each
// step is not amplified and the error grows at most linearly in L: per step the scores pick up
// about eps * (d + log2 n) * |score|, so we allow 4 eps (d + log2 n) L relative to the score
// scale (L = 1000, d = 8, n = 128: 3.6e-3).
void expect_engine_runs_construction(const std::string& text, int d, int n, int m) {
  const ConstructionSpec spec = parse_construction(text);
  const Model model = construct(spec, d);
  const Engine engine(model.config, model.weights);
  const IclTask task = make_task(d, n, m, 77);
  const std::vector<float> tokens = icl_tokens(task.x, task.y, task.queries, d);
  std::vector<float> scores(m);
  engine.query_scores(tokens, 1, n + m, n, scores);
  const Eigen::VectorXd direct = construction_scores(
      spec, as_matrix(task.x, n, d), Eigen::Map<const Eigen::VectorXf>(task.y.data(), n).cast<double>(),
      as_matrix(task.queries, m, d));
  const double scale = std::max(1.0, direct.cwiseAbs().maxCoeff());
  const double bound = 4 * kEpsF32 * (d + std::log2(n)) * spec.steps;
  double worst = 0;
  for (int q = 0; q < m; ++q) worst = std::max(worst, std::abs(scores[q] - direct[q]) / scale);
  EXPECT_LE(worst, bound) << text;
  EXPECT_GT(direct.cwiseAbs().maxCoeff(), 1e-3) << text;
}

TEST(EngineConstructions, GdLeastSquares) {
  expect_engine_runs_construction("gd-ls:L=1,eta=1", 8, 64, 16);
  expect_engine_runs_construction("gd-ls:L=1000,eta=0.5", 8, 128, 16);
}
TEST(EngineConstructions, GdPlusPlus) {
  expect_engine_runs_construction("gd++:L=50,eta=0.3,gamma=0.05", 8, 128, 16);
}
TEST(EngineConstructions, GdHinge) {
  expect_engine_runs_construction("gd-hinge:L=1000,eta=0.5,tau=0.5", 8, 128, 16);
}
TEST(EngineConstructions, GdLogistic) {
  expect_engine_runs_construction("gd-logistic:L=1000,eta=1,K=16,R=8", 8, 128, 16);
}
TEST(EngineConstructions, Kernel) {
  expect_engine_runs_construction("kernel:beta=0.5", 8, 128, 16);
}

// The residual streams of B prompts, run in batches of the given sizes with a given thread count.
std::vector<float> outputs_with(const Engine& engine, const std::vector<float>& tokens, int prompts,
                                int t, int n, int threads, const std::vector<int>& batches) {
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
  const int width = engine.config().width;
  std::vector<float> out(tokens.size());
  int first = 0;
  for (int count : batches) {
    engine.forward(std::span(tokens).subspan(first * t * width, count * t * width), count, t, n,
                   std::span(out).subspan(first * t * width, count * t * width));
    first += count;
  }
  EXPECT_EQ(first, prompts);
  return out;
}

// Every attention path (linear Q (K^T V), linear and ReLU and softmax with explicit scores, the
// causal per-head scores with their masks), with and without norms and MLPs, in f32 and bf16,
// gives the same bits under both schedules and any batching.
TEST(EngineDeterminism, BitIdenticalAcrossThreadsAndBatchings) {
  struct Learner {
    const char* spec;
    int d;
    bool explicit_linear;
    bool unfused;
  };
  const Learner learners[] = {
      {"gd-hinge:L=20,eta=1", 8, false, false},  // linear Q (K^T V), ReLU MLP
      {"gd-ls:L=3", 8, true, false},             // linear attention with explicit scores, fused
      {"gd-ls:L=3", 8, true, true},              // ... and as three ops
      {"kernel:beta=1", 8, false, false},        // softmax, icl mask, fused
      {"kernel:beta=1", 8, false, true},         // ... and as three ops
      {"gd++:L=4,gamma=0.1", 8, false, false},   // linear, two heads
      {"encoder:D=32,H=4,F=64,layers=2", 0, false, false},  // causal softmax, norms, GELU pass
      {"encoder:D=32,H=4,F=64,layers=2", 0, false, true},   // ... causal per-head scores, mask
  };
  for (const Learner& learner : learners) {
    for (bool bf16 : {false, true}) {
      const Model model = construct(parse_construction(learner.spec), learner.d, 7);
      EngineOptions options;
      options.bf16 = bf16;
      options.explicit_linear_attention = learner.explicit_linear;
      options.unfused_attention = learner.unfused;
      const Engine engine(model.config, model.weights, options);
      // Three row tiles per prompt. A batch of at least 4 prompts per thread runs prompt-major
      // (a task per prompt, all layers), a smaller one stage-major (each step spread over all
      // pieces): 8 prompts on 1 and on 2 threads run prompt-major, 3 + 5 on 2 threads
      // stage-major, and 1 + 2 + 5 on 1 thread both.
      const int prompts = 8, n = 300, t = 520;
      const std::vector<float> tokens = random_tokens(prompts * t * model.config.width, 3);
      const auto reference = outputs_with(engine, tokens, prompts, t, n, 1, {8});
      const std::string name = std::string(learner.spec) + (bf16 ? " bf16" : " f32") +
                               (learner.unfused ? " unfused" : "");
      EXPECT_EQ(reference, outputs_with(engine, tokens, prompts, t, n, 2, {8})) << name;
      EXPECT_EQ(reference, outputs_with(engine, tokens, prompts, t, n, 2, {3, 5})) << name;
      EXPECT_EQ(reference, outputs_with(engine, tokens, prompts, t, n, 1, {1, 2, 5})) << name;
    }
  }
}

// Bytes the process has allocated through malloc (oneDNN, TBB's buffers and ours all use it).
std::uint64_t allocated_bytes() {
  const struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
}

// working_bytes() is what eval and bounds check against the machine's memory before a run, so
// it must match what a forward really allocates: the plan's buffers, the score tiles and the
// causal masks, measured here as the growth of malloc's in-use bytes over the first forward
// (the plan stays cached afterwards). The slack is for what the estimate leaves out: oneDNN's
// primitives and scratchpads (at most a few MB at these shapes).
TEST(EngineMemory, WorkingBytesMatchesWhatAForwardAllocates) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "sanitizers replace malloc, and mallinfo2 no longer sees the allocations";
#endif
  struct MemoryCase {
    const char* spec;
    int d;
    std::int64_t prompts, tokens, context;
    bool bf16;
    bool unfused = false;
  };
  const MemoryCase cases[] = {
      {"kernel:beta=1", 8, 1, 6064, 6000, false, true},       // softmax score tiles dominate
      {"kernel:beta=1", 8, 1, 6064, 6000, true, true},        // bf16 weights next to the scores
      {"kernel:beta=1", 8, 1, 6064, 6000, true},              // fused: no score tiles
      {"gd-hinge:L=3,eta=1", 16, 4, 1100, 1000, true},         // group buffers, bf16
      {"gd-ls:L=2", 32, 64, 4160, 4096, false},                // a full 256 MB group
      {"encoder:D=64,H=4,F=256,layers=2", 0, 2, 700, 700, false, true},  // causal masks
      {"encoder:D=64,H=4,F=256,layers=2", 0, 2, 700, 700, false},  // fused: no masks
  };
  tbb::global_control one_thread(tbb::global_control::max_allowed_parallelism, 1);
  for (const MemoryCase& c : cases) {
    const Model model = construct(parse_construction(c.spec), c.d, 5);
    EngineOptions options;
    options.bf16 = c.bf16;
    options.unfused_attention = c.unfused;
    const Engine engine(model.config, model.weights, options);
    const std::vector<float> tokens = random_tokens(c.prompts * c.tokens * model.config.width, 4);
    std::vector<float> out(tokens.size());
    const std::uint64_t before = allocated_bytes();
    engine.forward(tokens, c.prompts, c.tokens, c.context, out);
    const double grown = static_cast<double>(allocated_bytes() - before);
    // What the forward keeps: the moment's copies of an f32 plan's weight analysis are freed
    // by then, so they are not in the growth.
    const double estimate =
        static_cast<double>(Engine::working_bytes(model.config, options, c.tokens, c.context, c.prompts, 1) -
                            Engine::plan_building_bytes(model.config, options));
    std::printf("%s: estimate %.1f MB, allocated %.1f MB\n", c.spec, estimate / 1e6, grown / 1e6);
    EXPECT_GE(grown, 0.97 * estimate) << c.spec;
    EXPECT_LE(grown, 1.03 * estimate + 8e6) << c.spec;
  }
}

TEST(EngineErrors, RejectsInconsistentInputs) {
  const Model model = construct(parse_construction("gd-ls"), 3);
  const Engine engine(model.config, model.weights);
  std::vector<float> tokens(2 * 5 * 7), out(2 * 5 * 7), scores(2 * 2);
  EXPECT_THROW(engine.forward(tokens, 2, 5, 0, out), std::invalid_argument);   // no context
  EXPECT_THROW(engine.forward(tokens, 2, 5, 6, out), std::invalid_argument);   // n > T
  std::vector<float> out_of_three(3 * 5 * 7);
  EXPECT_THROW(engine.forward(tokens, 3, 5, 3, out_of_three), std::invalid_argument);  // tokens short
  // An output of the wrong size is the caller's bug, not bad input (exit 1 in the CLI, not 2).
  std::vector<float> short_out(2 * 5 * 7 - 1), short_scores(2 * 2 - 1);
  auto is_logic_error_only = [](auto&& call) {
    try {
      call();
    } catch (const std::invalid_argument&) {
      return false;
    } catch (const std::logic_error&) {
      return true;
    }
    return false;
  };
  EXPECT_TRUE(is_logic_error_only([&] { engine.forward(tokens, 2, 5, 3, short_out); }));
  EXPECT_TRUE(is_logic_error_only([&] { engine.query_scores(tokens, 2, 5, 3, short_scores); }));
  EXPECT_TRUE(is_logic_error_only([&] { engine.query_scores(tokens, 2, 5, 2, scores); }));  // 4, not 6
  Weights short_weights = model.weights;
  short_weights.layers[0].wq.pop_back();
  EXPECT_THROW(Engine(model.config, short_weights), ConfigError);
}

}  // namespace
}  // namespace iclbench::model

// Plan-time weight structure (model/weight_structure.hpp): the structured engine against the
// dense one (EngineOptions::dense) and against the double reference, on every construction and
// on random weights with planted structure; the FLOPs a plan reports against the dense formula
// and against a count by hand.

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include "model/constructions.hpp"
#include "model/engine.hpp"
#include "model/reference.hpp"
#include "util/philox.hpp"

namespace iclbench::model {
namespace {

constexpr double kEpsF32 = 0x1p-24;  // unit roundoff of f32

std::vector<float> random_values(std::int64_t count, std::uint64_t seed) {
  std::vector<float> values(static_cast<std::size_t>(count));
  util::DrawSequence draws(seed, 0, 0, util::Stream::kContextInput);
  for (float& value : values) value = static_cast<float>(draws.normal());
  return values;
}

struct Outputs {
  std::vector<float> structured, dense;
};
Outputs both_outputs(const ModelConfig& config, const Weights& weights,
                     const std::vector<float>& tokens, int prompts, int t, int n) {
  EngineOptions dense_options;
  dense_options.dense = true;
  const Engine structured(config, weights), dense(config, weights, dense_options);
  Outputs out{std::vector<float>(tokens.size()), std::vector<float>(tokens.size())};
  structured.forward(tokens, prompts, t, n, out.structured);
  dense.forward(tokens, prompts, t, n, out.dense);
  return out;
}

// max |a - b| / max(1, max |b|)
double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0, scale = 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, static_cast<double>(std::abs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::abs(b[i])));
  }
  return worst / scale;
}

// --- constructions -----------------------------------------------------------------------------

// Structured and dense compute the same sums except that structured leaves out exact zeros
// (x * 0 = 0, s + 0 = s) and copies selections (s * x, rounded once either way): they differ only
// by the order in which a live column adds its k live products and its bias. Each order errs by
// at most gamma_(k+1) sum |w x| (Higham 3.1), so one map's outputs differ by at most
// 2 (k + 1) u sum |w x|. Through a run, the engine_test construction bound (4 eps (d + log2 n) L
// relative to the score scale, from non-expansive GD steps) holds for each run against the exact
// scores, so the two runs differ by at most twice it (triangle inequality).
double construction_bound(const ConstructionSpec& spec, int d, int n) {
  return 2 * 4 * kEpsF32 * (d + std::log2(n)) * spec.steps;
}

struct ConstructionCase {
  const char* spec;
  bool structured;  // whether any projection is expected to be structured
};

TEST(WeightStructure, ConstructionsMatchTheDensePath) {
  const ConstructionCase cases[] = {
      {"gd-ls:L=20,eta=0.5", true},
      {"gd++:L=10,eta=0.3,gamma=0.05", true},
      {"gd-hinge:L=50,eta=0.5,tau=0.5", true},
      {"gd-logistic:L=50,eta=1,K=16,R=8", true},
      {"kernel:beta=0.5", true},
      // Random dense weights: no structure, so the plan is dense and the bits are the same.
      {"encoder:D=32,H=4,F=64,layers=2", false},
  };
  const int d = 8, n = 300, m = 40, t = n + m, prompts = 3;
  for (const ConstructionCase& c : cases) {
    const ConstructionSpec spec = parse_construction(c.spec);
    const Model model = construct(spec, d, 5);
    const int width = model.config.width;
    std::vector<float> tokens;
    if (is_constructed_learner(spec)) {
      for (int prompt = 0; prompt < prompts; ++prompt) {
        const std::vector<float> x = random_values(n * d, 10 + prompt);
        const std::vector<float> queries = random_values(m * d, 20 + prompt);
        std::vector<float> y(n);
        for (int i = 0; i < n; ++i) y[i] = x[i * d] + 0.3f * x[i * d + 1] >= 0 ? 1.0f : -1.0f;
        const std::vector<float> prompt_tokens = icl_tokens(x, y, queries, d);
        tokens.insert(tokens.end(), prompt_tokens.begin(), prompt_tokens.end());
      }
    } else {
      tokens = random_values(prompts * t * width, 30);
    }
    const Outputs out = both_outputs(model.config, model.weights, tokens, prompts, t, n);
    EngineOptions dense_options;
    dense_options.dense = true;
    const Engine structured(model.config, model.weights);
    const Engine dense(model.config, model.weights, dense_options);
    const std::string projection = structured.implementations(t, n).at("projection");
    // The looped layer's loop-invariant MLP units (ops::ColumnSweep), from the weights
    // (constructions.cpp): gd-hinge's relu(y), relu(-y) wholly and its two hinge units' y-terms
    // (their first terms: slot y precedes p); gd-logistic's relu(y), relu(-y) (its knot units
    // read p only).
    const std::map<std::string, std::string> found = structured.implementations(t, n);
    const auto hoisted = found.count("sweep_hoisted_units") ? found.at("sweep_hoisted_units") : "0";
    if (spec.kind == ConstructionKind::kGdHinge) {
      EXPECT_EQ(hoisted, "4") << c.spec;
    }
    if (spec.kind == ConstructionKind::kGdLogistic) {
      EXPECT_EQ(hoisted, "2") << c.spec;
    }
    if (c.structured) {
      EXPECT_LE(relative_difference(out.structured, out.dense), construction_bound(spec, d, n))
          << c.spec;
      // Selections read as views of x (AttentionPlan::small) or run as structured columns.
      EXPECT_EQ(projection.rfind("structured:", 0), 0u) << c.spec << ": " << projection;
      EXPECT_LT(structured.forward_flops(t, n), dense.forward_flops(t, n)) << c.spec;
    } else {
      EXPECT_EQ(out.structured, out.dense) << c.spec;
      EXPECT_EQ(projection.rfind("structured:", 0), std::string::npos) << c.spec;
      EXPECT_EQ(structured.forward_flops(t, n), dense.forward_flops(t, n)) << c.spec;
    }
    for (float value : out.structured) ASSERT_TRUE(std::isfinite(value)) << c.spec;
  }
}

// What gd-hinge executes, counted by hand from its weights (d x slots, width d + 4): each MLP
// (ops::SmallMlp, nonzero weights only) has units relu(p/tau + s y +- 1/2) (2 weights each),
// relu(+-g) and relu(+-y) (1 each), and g += their sum with 6 weights: 14 multiply-adds per
// token; the looped layer's Q = x and K = x are views of x, V = g a view, O goes to p as a
// view, and only M = K^T V (d per context token), Q M (d per token) and the MLP are
// multiply-adds. The dense plan executes ModelConfig::forward_flops.
TEST(WeightStructure, FlopsCountWhatRuns) {
  const int d = 16, n = 4096, t = n + 64, steps = 7;
  const ConstructionSpec spec = parse_construction("gd-hinge:L=7,eta=2,tau=0.5");
  const Model model = construct(spec, d);
  EngineOptions dense_options;
  dense_options.dense = true;
  const Engine structured(model.config, model.weights);
  const Engine dense(model.config, model.weights, dense_options);
  const double mlp = 2.0 * (2 * 2 + 4 * 1 + 6) * t;
  const double expected = mlp + steps * (2.0 * d * n + 2.0 * d * t + mlp);
  EXPECT_DOUBLE_EQ(structured.forward_flops(t, n), expected);
  EXPECT_DOUBLE_EQ(dense.forward_flops(t, n), model.config.forward_flops(t, n));
  // By op group (speed --op-groups), the same executed count: the MLP group is credited with
  // SmallMlp's multiply-adds (it once had none, so no rate) of the layer before the loop; the
  // loop's MLP runs inside the column sweep's kernel with Q M, timed as attention, so its FLOPs
  // are attention's (credited to the MLP group they gave it a rate of 98x the GEMM peak); the
  // projections, all views, have none; the groups add up to what the plan executes.
  EngineOptions timed_options;
  timed_options.time_op_groups = true;
  const Engine timed(model.config, model.weights, timed_options);
  std::vector<float> tokens(static_cast<std::size_t>(t) * model.config.width, 0.5f), scores(t - n);
  timed.query_scores(tokens, 1, t, n, scores);
  const OpGroupTimes times = timed.take_op_group_times(t, n);
  ASSERT_EQ(times.prompts, 1);
  EXPECT_DOUBLE_EQ(times.flops[static_cast<std::size_t>(OpGroup::kMlp)], mlp);
  EXPECT_DOUBLE_EQ(times.flops[static_cast<std::size_t>(OpGroup::kAttention)],
                   steps * (2.0 * d * n + 2.0 * d * t + mlp));
  EXPECT_EQ(times.flops[static_cast<std::size_t>(OpGroup::kProjections)], 0.0);
  double total = 0;
  for (const double group : times.flops) total += group;
  EXPECT_DOUBLE_EQ(total, expected);
  // bf16 plans are dense whatever the option says.
  EngineOptions bf16_options;
  bf16_options.bf16 = true;
  const Engine bf16(model.config, model.weights, bf16_options);
  EXPECT_DOUBLE_EQ(bf16.forward_flops(t, n), model.config.forward_flops(t, n));
  // The loop runs on its live slots column-major (ops::ColumnSweep), the same FLOPs; dense and
  // bf16 plans have no views and no sweep.
  EXPECT_EQ(structured.implementations(t, n).at("sweep"), "column_major");
  EXPECT_EQ(dense.implementations(t, n).count("sweep"), 0u);
  EXPECT_EQ(bf16.implementations(t, n).count("sweep"), 0u);
}

// Under --explicit-linear gd-ls's projections are not views but structured columns (the views
// need ops::LinearAttention's Q (K^T V)), mostly selections: the projections group is credited
// with what they execute, counted by hand from the weights (constructions.cpp, width d + 2):
// Q = x, d copies over the T query rows, and K = x, d copies over the n key rows, each a
// multiply by its scale (1 FLOP); V = y - p, a live column with 2 multiply-adds (4 FLOPs) over
// the n key rows; O, one copy into p added to x (2 FLOPs) over the T rows. Copies once counted
// 0, which left the group with time and almost no FLOPs (speed --op-groups printed "0.00").
TEST(WeightStructure, ExplicitLinearProjectionsCountTheirCopies) {
  const int d = 8, n = 64, t = n + 8;
  const Model model = construct(parse_construction("gd-ls:L=1,eta=1"), d);
  EngineOptions options;
  options.explicit_linear_attention = true;
  options.time_op_groups = true;
  const Engine timed(model.config, model.weights, options);
  ASSERT_EQ(timed.implementations(t, n).at("projection"), "structured:columns");
  std::vector<float> tokens(static_cast<std::size_t>(t) * model.config.width, 0.5f), scores(t - n);
  timed.query_scores(tokens, 1, t, n, scores);
  const OpGroupTimes times = timed.take_op_group_times(t, n);
  ASSERT_EQ(times.prompts, 1);
  const double projections = 1.0 * d * t + (1.0 * d + 4) * n + 2.0 * t;
  EXPECT_DOUBLE_EQ(times.flops[static_cast<std::size_t>(OpGroup::kProjections)], projections);
  // The groups add up to what the plan executes: the projections and the attention products.
  double total = 0;
  for (const double group : times.flops) total += group;
  EXPECT_DOUBLE_EQ(total, timed.forward_flops(t, n));
  EXPECT_DOUBLE_EQ(total - projections,
                   Engine::op_group_flops(model.config, t, n, true)[static_cast<std::size_t>(
                       OpGroup::kAttention)]);
}

// --- random weights with planted structure -----------------------------------------------------

void zero_rows(std::vector<float>& w, int columns, int first, int last) {
  for (int r = first; r < last; ++r)
    for (int c = 0; c < columns; ++c) w[static_cast<std::size_t>(r * columns + c)] = 0.0f;
}
void zero_column(std::vector<float>& w, std::vector<float>& bias, int rows, int columns, int c) {
  for (int r = 0; r < rows; ++r) w[static_cast<std::size_t>(r * columns + c)] = 0.0f;
  bias[static_cast<std::size_t>(c)] = 0.0f;
}
void select_column(std::vector<float>& w, std::vector<float>& bias, int rows, int columns, int c,
                   int source, float scale) {
  zero_column(w, bias, rows, columns, c);
  w[static_cast<std::size_t>(source * columns + c)] = scale;
}

// Width 16, 2 heads of dk 3, dv 2, MLP 24 wide; the second layer is looped 3 times. Planted:
// - W_q: only slots 0..3 read; columns 0 and 1 select slots 0 and 2 (scaled by 0.5), column 2
//   is zero, the rest random on slots 0..3;
// - [W_k W_v]: K selects slots 0..5; V column 0 selects slot 12 (written by the MLP below, so it
//   changes between passes), V column 1 random on slots 10 and 11 (written by W_o);
// - W_o writes slots 10 and 11 only (the first as a copy of O's column 0);
// - MLP: hidden units 0..5 live on slots 10..13, units 6..11 with a zero down row, units 12..23
//   with a zero up column and bias (dead); down writes slot 12 and 13.
// In the looped layer, Q and K read no slot that W_o or the MLP writes (10..13): computed in the
// first pass only; V reads slots 10..12: every pass.
Weights planted_weights(const ModelConfig& config, std::uint64_t seed) {
  Weights weights = random_weights(config, seed);
  const int width = config.width;
  for (LayerWeights& w : weights.layers) {
    const int q = 6, v = 4, hidden = 24;
    zero_rows(w.wq, q, 4, width);
    select_column(w.wq, w.bq, width, q, 0, 0, 1.0f);
    select_column(w.wq, w.bq, width, q, 1, 2, 0.5f);
    zero_column(w.wq, w.bq, width, q, 2);
    for (int c = 0; c < q; ++c) select_column(w.wk, w.bk, width, q, c, c, 1.0f);
    select_column(w.wv, w.bv, width, v, 0, 12, 1.0f);
    for (int c = 1; c < v; ++c) {
      zero_column(w.wv, w.bv, width, v, c);
      w.wv[static_cast<std::size_t>(10 * v + c)] = 0.7f;
      w.wv[static_cast<std::size_t>(11 * v + c)] = -0.4f;
    }
    for (int c = 0; c < width; ++c) {
      if (c == 10) {
        select_column(w.wo, w.bo, v, width, c, 0, 1.0f);
      } else if (c != 11) {
        zero_column(w.wo, w.bo, v, width, c);
      }
    }
    zero_rows(w.w1, hidden, 0, 10);
    zero_rows(w.w1, hidden, 14, width);
    zero_rows(w.w2, width, 6, 12);
    for (int unit = 12; unit < hidden; ++unit) zero_column(w.w1, w.b1, width, hidden, unit);
    for (int c = 0; c < width; ++c)
      if (c != 12 && c != 13) zero_column(w.w2, w.b2, hidden, width, c);
    // Keep the loop from growing: the MLP's and the output's weights small.
    for (float& value : w.w2) value *= 0.2f;
    for (float& value : w.wo) value *= 0.5f;
  }
  return weights;
}

ModelConfig planted_config(bool norms, Activation activation, AttentionKind kind, Mask mask) {
  ModelConfig config;
  config.width = 16;
  for (int index = 0; index < 2; ++index) {
    LayerConfig layer;
    layer.attention_norm = layer.mlp_norm = norms;
    layer.attention = kind;
    layer.heads = 2;
    layer.qk_dim = 3;
    layer.v_dim = 2;
    layer.scale = 0.5f;
    layer.mean_over_keys = kind != AttentionKind::kSoftmax;
    layer.mask = mask;
    layer.mlp_hidden = 24;
    layer.activation = activation;
    layer.loop = index == 0 ? 1 : 3;
    config.layers.push_back(layer);
  }
  return config;
}

// The bound of engine_test's EngineMatchesReference (a random walk of f32 rounding through the
// 12 matmuls an output passes, times 4 for the Jacobians): each engine is within it of the
// double reference; structured and dense are then within twice it of each other.
double f32_bound(std::int64_t k) {
  return 4 * std::sqrt(12.0) * (2 * kEpsF32 + kEpsF32 * std::sqrt(static_cast<double>(k) / 2));
}

double reference_difference(const ModelConfig& config, const Weights& weights,
                            const std::vector<float>& tokens, const std::vector<float>& out,
                            int prompts, int t, int n) {
  const int width = config.width;
  double worst = 0;
  for (int b = 0; b < prompts; ++b) {
    MatrixD prompt(t, width), found(t, width);
    for (int i = 0; i < t * width; ++i) {
      prompt.data()[i] = tokens[static_cast<std::size_t>(b * t * width + i)];
      found.data()[i] = out[static_cast<std::size_t>(b * t * width + i)];
    }
    const MatrixD expected = reference_forward(config, weights, prompt, n);
    worst = std::max(worst, (found - expected).cwiseAbs().maxCoeff() /
                                std::max(1.0, expected.cwiseAbs().maxCoeff()));
  }
  return worst;
}

using PlantedCase = std::tuple<bool, Activation, AttentionKind, Mask>;
class PlantedStructure : public ::testing::TestWithParam<PlantedCase> {};

TEST_P(PlantedStructure, MatchesDenseAndReference) {
  const auto [norms, activation, kind, mask] = GetParam();
  const ModelConfig config = planted_config(norms, activation, kind, mask);
  const Weights weights = planted_weights(config, 17);
  const int prompts = 2, t = 300, n = mask == Mask::kIcl ? 211 : t;
  const std::vector<float> tokens = random_values(prompts * t * config.width, 41);
  const Outputs out = both_outputs(config, weights, tokens, prompts, t, n);
  const double bound = f32_bound(std::max(t, config.width));
  EXPECT_LE(relative_difference(out.structured, out.dense), 2 * bound);
  EXPECT_LE(reference_difference(config, weights, tokens, out.structured, prompts, t, n), bound);
  EXPECT_LE(reference_difference(config, weights, tokens, out.dense, prompts, t, n), bound);
  // The structure was found: Q and the MLP run structured, and fewer FLOPs are executed.
  const Engine structured(config, weights);
  EngineOptions dense_options;
  dense_options.dense = true;
  const Engine dense(config, weights, dense_options);
  EXPECT_EQ(structured.implementations(t, n).at("projection"), "structured:columns");
  // Without a norm and with ReLU or no activation the live MLP is small enough for
  // ops::SmallMlp; otherwise its two maps are structured columns.
  EXPECT_EQ(structured.implementations(t, n).at("mlp"),
            norms || activation == Activation::kGelu ? "structured:columns"
                                                     : "structured:small_mlp");
  EXPECT_LT(structured.forward_flops(t, n), dense.forward_flops(t, n));
}

// Q, K and V that only select slots, and W_o that only selects: the plan reads Q, K and V
// straight from x and adds O straight into it (AttentionPlan::small), heads at scattered,
// unordered slots. Width 16, 2 heads of dk 3 and dv 2, loop 3, a random MLP on slots 10..15:
// with ReLU an ops::SmallMlp, so the loop runs on its live slots column-major
// (LayerPlan::column_sweep); with GELU structured columns, so it runs one row-major sweep per pass.
TEST(WeightStructure, ViewsOfTheStreamMatchDenseAndReference) {
 for (const Activation activation : {Activation::kRelu, Activation::kGelu}) {
  SCOPED_TRACE(activation == Activation::kRelu ? "relu" : "gelu");
  ModelConfig config = planted_config(false, activation, AttentionKind::kLinear, Mask::kIcl);
  Weights weights = planted_weights(config, 23);
  const int width = config.width, q = 6, v = 4;
  const int query_slots[2] = {4, 0}, key_slots[2] = {0, 7}, value_slots[2] = {12, 10};
  const int output_slots[4] = {14, 15, 10, 11};
  for (LayerWeights& w : weights.layers) {
    for (int head = 0; head < 2; ++head) {
      for (int a = 0; a < 3; ++a) {
        select_column(w.wq, w.bq, width, q, head * 3 + a, query_slots[head] + a, 1.0f);
        select_column(w.wk, w.bk, width, q, head * 3 + a, key_slots[head] + a, 1.0f);
      }
      for (int b = 0; b < 2; ++b) {
        select_column(w.wv, w.bv, width, v, head * 2 + b, value_slots[head] + b, 1.0f);
      }
    }
    std::fill(w.wo.begin(), w.wo.end(), 0.0f);
    std::fill(w.bo.begin(), w.bo.end(), 0.0f);
    for (int column = 0; column < v; ++column) {
      w.wo[static_cast<std::size_t>(column * width + output_slots[column])] = 1.0f;
    }
  }
  const int prompts = 2, t = 300, n = 211;
  const std::vector<float> tokens = random_values(prompts * t * width, 43);
  const double bound = f32_bound(std::max(t, width));
  // Weights run structured agree with the dense path, and (with_reference) with the double
  // reference, within the f32 bound.
  auto agrees = [&](const char* what, const Weights& w, bool with_reference) {
    SCOPED_TRACE(what);
    const Outputs out = both_outputs(config, w, tokens, prompts, t, n);
    EXPECT_LE(relative_difference(out.structured, out.dense), 2 * bound);
    if (with_reference) {
      EXPECT_LE(reference_difference(config, w, tokens, out.structured, prompts, t, n), bound);
    }
  };
  agrees("views", weights, true);
  const Engine structured(config, weights);
  EXPECT_EQ(structured.implementations(t, n).at("projection"), "structured:view");
  EXPECT_EQ(structured.implementations(t, n).at("keys_times_values"), "iclbench:linear_attention");
  // Q, K and V all views in a looped layer: one sweep per pass (with 2 row tiles per prompt, so
  // M of later passes comes from two block sums).
  EXPECT_EQ(structured.implementations(t, n).at("sweep"),
            activation == Activation::kRelu ? "column_major" : "one_per_pass");
  if (activation == Activation::kRelu) {
    // The MLP reads slots 10..13, all written in the loop (by O or the MLP): nothing hoisted.
    EXPECT_EQ(structured.implementations(t, n).count("sweep_hoisted_units"), 0u);
    // Loop-invariant units: unit 0 gains a leading term on slot 9 (K reads it, nothing writes
    // it), unit 1 reads slots 8 and 9 only; the column sweep computes both parts once
    // (ops::ColumnSweep) and must still match the dense path and the double reference.
    Weights invariant = weights;
    for (LayerWeights& w : invariant.layers) {
      const int hidden = 24;
      w.w1[static_cast<std::size_t>(9 * hidden + 0)] = 0.6f;
      for (int slot = 0; slot < width; ++slot) w.w1[static_cast<std::size_t>(slot * hidden + 1)] = 0.0f;
      w.w1[static_cast<std::size_t>(8 * hidden + 1)] = -0.5f;
      w.w1[static_cast<std::size_t>(9 * hidden + 1)] = 0.8f;
    }
    const Engine hoisting(config, invariant);
    EXPECT_EQ(hoisting.implementations(t, n).at("sweep"), "column_major");
    EXPECT_EQ(hoisting.implementations(t, n).at("sweep_hoisted_units"), "2");
    agrees("loop-invariant units", invariant, true);
  }
  // An output slot that a query view reads: O must then go through W_o (the kernel would read
  // a row's queries after adding its first head's output).
  for (LayerWeights& w : weights.layers) {
    w.wo[static_cast<std::size_t>(0 * width + output_slots[0])] = 0.0f;
    w.wo[static_cast<std::size_t>(0 * width + 5)] = 1.0f;
  }
  const Engine overlapping(config, weights);
  EXPECT_NE(overlapping.implementations(t, n).at("projection"), "structured:view");
  EXPECT_EQ(overlapping.implementations(t, n).at("sweep"), "one_per_pass");
  agrees("an output slot a query reads", weights, false);
 }
}

INSTANTIATE_TEST_SUITE_P(
    Mixed, PlantedStructure,
    ::testing::Values(PlantedCase{false, Activation::kRelu, AttentionKind::kLinear, Mask::kIcl},
                      PlantedCase{false, Activation::kGelu, AttentionKind::kSoftmax, Mask::kIcl},
                      PlantedCase{true, Activation::kRelu, AttentionKind::kLinear, Mask::kIcl},
                      PlantedCase{false, Activation::kNone, AttentionKind::kRelu, Mask::kCausal},
                      PlantedCase{true, Activation::kGelu, AttentionKind::kSoftmax,
                                  Mask::kCausal}));

}  // namespace
}  // namespace iclbench::model

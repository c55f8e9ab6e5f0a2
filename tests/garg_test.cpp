// garg-gpt2 models (model/garg.hpp): the engine's read-in, positional table, GELU-tanh MLP and
// read-out against the Eigen reference; the loader's errors; and the cross-check of the shipped
// model against the scores PyTorch wrote when it was exported (scripts/train/export.py), with no
// PyTorch at test time.

#include "model/garg.hpp"

#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>

#include "io/safetensors.hpp"
#include "model/engine.hpp"
#include "model/reference.hpp"
#include "util/philox.hpp"

namespace iclbench::model {
namespace {

namespace fs = std::filesystem;

constexpr double kEpsF32 = 0x1p-24;  // unit roundoff of f32
constexpr double kEpsBf16 = 0x1p-8;  // unit roundoff of bf16

// The tensors of a garg-gpt2 file, written out from the format's description (scripts/train/
// garg_model.py tensor_shapes), not from the loader's table: d, P pairs, D, L layers.
std::map<std::string, std::vector<std::int64_t>> garg_shapes(int d, int pairs, int width,
                                                             int layers) {
  std::map<std::string, std::vector<std::int64_t>> shapes = {
      {"_read_in.weight", {width, d}},
      {"_read_in.bias", {width}},
      {"_backbone.wpe.weight", {2 * pairs, width}},
      {"_backbone.ln_f.weight", {width}},
      {"_backbone.ln_f.bias", {width}},
      {"_read_out.weight", {1, width}},
      {"_read_out.bias", {1}}};
  for (int i = 0; i < layers; ++i) {
    const std::string p = "_backbone.h." + std::to_string(i) + ".";
    shapes[p + "ln_1.weight"] = {width};
    shapes[p + "ln_1.bias"] = {width};
    shapes[p + "attn.c_attn.weight"] = {width, 3 * width};
    shapes[p + "attn.c_attn.bias"] = {3 * width};
    shapes[p + "attn.c_proj.weight"] = {width, width};
    shapes[p + "attn.c_proj.bias"] = {width};
    shapes[p + "ln_2.weight"] = {width};
    shapes[p + "ln_2.bias"] = {width};
    shapes[p + "mlp.c_fc.weight"] = {width, 4 * width};
    shapes[p + "mlp.c_fc.bias"] = {4 * width};
    shapes[p + "mlp.c_proj.weight"] = {4 * width, width};
    shapes[p + "mlp.c_proj.bias"] = {width};
  }
  return shapes;
}

struct GargFile {
  int d = 3, pairs = 6, width = 12, layers = 2, heads = 2;
  std::map<std::string, std::string> metadata_changes;  // value "" removes the key
  std::map<std::string, std::vector<std::int64_t>> shape_changes;
  std::vector<std::string> dropped, added;
  std::string non_finite;  // a tensor whose element 1 becomes NaN
  std::string bf16;        // a tensor stored as BF16 (its values' upper halves)
};

// Writes a garg-gpt2 file with random weights (norm gains near 1, the rest ~ N(0, 0.3^2)) and
// the requested damage; returns its path.
fs::path write_garg(const std::string& name, const GargFile& spec) {
  const fs::path dir = fs::path(ICLBENCH_TEST_TMPDIR) / "garg_files";
  fs::create_directories(dir);
  const fs::path path = dir / (name + ".safetensors");
  std::map<std::string, std::string> metadata = {{"format", "garg-gpt2"},
                                                 {"format_version", "1"},
                                                 {"n_dims", std::to_string(spec.d)},
                                                 {"n_positions", std::to_string(spec.pairs)},
                                                 {"n_embd", std::to_string(spec.width)},
                                                 {"n_layer", std::to_string(spec.layers)},
                                                 {"n_head", std::to_string(spec.heads)},
                                                 {"layer_norm_epsilon", "1e-05"},
                                                 {"activation_function", "gelu_new"}};
  for (const auto& [key, value] : spec.metadata_changes) {
    if (value.empty()) {
      metadata.erase(key);
    } else {
      metadata[key] = value;
    }
  }
  auto shapes = garg_shapes(spec.d, spec.pairs, spec.width, spec.layers);
  for (const auto& [tensor, shape] : spec.shape_changes) shapes[tensor] = shape;
  for (const std::string& tensor : spec.dropped) shapes.erase(tensor);
  for (const std::string& tensor : spec.added) shapes[tensor] = {2};
  std::vector<io::TensorToWrite> layout;
  for (const auto& [tensor, shape] : shapes) {
    layout.push_back({tensor, tensor == spec.bf16 ? io::DType::kBF16 : io::DType::kF32, shape});
  }
  io::SafetensorsWriter writer(path, metadata, layout, io::Overwrite::kAllow);
  std::uint32_t index = 0;
  for (const auto& [tensor, shape] : shapes) {
    std::int64_t count = 1;
    for (std::int64_t extent : shape) count *= extent;
    std::vector<float> values(static_cast<std::size_t>(count));
    util::DrawSequence draws(7, ++index, 0, util::Stream::kModelWeights);
    const bool gain = tensor.find("ln_") != std::string::npos && tensor.ends_with(".weight");
    for (float& value : values)
      value = static_cast<float>((gain ? 1.0 : 0.0) + 0.3 * draws.normal());
    if (tensor == spec.non_finite) values[1] = NAN;
    if (tensor == spec.bf16) {
      std::vector<std::uint16_t> halves;
      for (float value : values)
        halves.push_back(static_cast<std::uint16_t>(std::bit_cast<std::uint32_t>(value) >> 16));
      writer.write(tensor, 0, std::as_bytes(std::span(halves)));
      continue;
    }
    writer.write_f32(tensor, 0, values);
  }
  writer.commit();
  return path;
}

std::string load_error(const GargFile& spec, const std::string& name) {
  const fs::path path = write_garg(name, spec);
  try {
    load_model(path);
  } catch (const io::FormatError& error) {
    return error.what();
  }
  return "(loaded without error)";
}

// Interleaved prompts of k pairs and one query each: [B, 2k + 1, d].
std::vector<float> random_prompts(std::int64_t prompts, std::int64_t k, int d, std::uint64_t seed) {
  util::DrawSequence draws(seed, 0, 0, util::Stream::kContextInput);
  std::vector<float> tokens;
  for (std::int64_t b = 0; b < prompts; ++b) {
    std::vector<float> x(static_cast<std::size_t>(k * d)), y(static_cast<std::size_t>(k)),
        query(static_cast<std::size_t>(d));
    for (float& value : x) value = static_cast<float>(draws.normal());
    for (float& value : y) value = draws.normal() > 0 ? 1.0f : -1.0f;
    for (float& value : query) value = static_cast<float>(draws.normal());
    const std::vector<float> prompt = interleaved_tokens(x, y, query, d);
    tokens.insert(tokens.end(), prompt.begin(), prompt.end());
  }
  return tokens;
}

MatrixD prompt_matrix(const std::vector<float>& tokens, std::int64_t prompt, std::int64_t t,
                      int d) {
  MatrixD matrix(t, d);
  for (std::int64_t i = 0; i < t * d; ++i) matrix.data()[i] = tokens[prompt * t * d + i];
  return matrix;
}

// Error bound of an f32 or bf16 engine score against exact arithmetic, as a random walk of
// rounding errors (the argument of engine_test's error_bound): each matmul with operands rounded
// to unit roundoff u and f32 accumulation over K terms errs, relative to its result, by about
// 2u + eps_f32 sqrt(K / 2); a score passes through 6 matmuls per layer (q|k|v, scores, mix,
// c_proj, c_fc, mlp c_proj) plus read-in and read-out, and independent errors add like the
// square root of their number. A factor 4 covers the Jacobians of LayerNorm and the layers.
// Relative to max(1, max |score|).
double score_bound(double unit_roundoff, int layers, std::int64_t k) {
  const double matmuls = 6.0 * layers + 2;
  return 4 * std::sqrt(matmuls) *
         (2 * unit_roundoff + kEpsF32 * std::sqrt(static_cast<double>(k) / 2));
}

TEST(GargModel, LoadsTheFileAndItsConfig) {
  const GargFile spec;
  const Model model = load_model(write_garg("plain", spec));
  const ModelConfig& config = model.config;
  EXPECT_EQ(config.width, 12);
  EXPECT_EQ(config.input_dim, 3);
  EXPECT_TRUE(config.read_in);
  EXPECT_TRUE(config.read_out);
  EXPECT_EQ(config.positions, 12);  // 2 n_positions
  ASSERT_EQ(config.layers.size(), 2u);
  EXPECT_EQ(config.layers[0].heads, 2);
  EXPECT_EQ(config.layers[0].qk_dim, 6);
  EXPECT_FLOAT_EQ(config.layers[0].scale, static_cast<float>(1 / std::sqrt(6.0)));
  EXPECT_EQ(config.layers[0].mask, Mask::kCausal);
  EXPECT_EQ(config.layers[0].activation, Activation::kGeluTanh);
  EXPECT_EQ(config.layers[0].mlp_hidden, 48);
  // The c_attn split and the read-in transpose, element by element.
  const io::SafetensorsReader file(write_garg("plain", spec));
  const auto c_attn = file.f32(*file.find("_backbone.h.1.attn.c_attn.weight"));
  const LayerWeights& layer = model.weights.layers[1];
  for (int r = 0; r < 12; ++r) {
    for (int c = 0; c < 12; ++c) {
      ASSERT_EQ(layer.wq[r * 12 + c], c_attn[r * 36 + c]);
      ASSERT_EQ(layer.wk[r * 12 + c], c_attn[r * 36 + 12 + c]);
      ASSERT_EQ(layer.wv[r * 12 + c], c_attn[r * 36 + 24 + c]);
    }
  }
  const auto read_in = file.f32(*file.find("_read_in.weight"));  // [D, d]
  for (int out = 0; out < 12; ++out) {
    for (int in = 0; in < 3; ++in)
      ASSERT_EQ(model.weights.read_in_w[in * 12 + out], read_in[out * 3 + in]);
  }
}

// The same model saved in iclbench's own format (read-in, positions and read-out as tensors of
// their own, the config as JSON) loads back unchanged.
TEST(GargModel, RoundTripsThroughTheIclbenchFormat) {
  const Model model = load_model(write_garg("plain", GargFile{}));
  const fs::path path = fs::path(ICLBENCH_TEST_TMPDIR) / "garg_files" / "as_iclbench.safetensors";
  save_model(path, model.config, model.weights, io::Overwrite::kAllow);
  const Model again = load_model(path);
  EXPECT_EQ(again.config, model.config);
  EXPECT_EQ(again.weights.read_in_w, model.weights.read_in_w);
  EXPECT_EQ(again.weights.positions, model.weights.positions);
  EXPECT_EQ(again.weights.read_out_norm_gamma, model.weights.read_out_norm_gamma);
  EXPECT_EQ(again.weights.read_out_w, model.weights.read_out_w);
  EXPECT_EQ(again.weights.read_out_b, model.weights.read_out_b);
  EXPECT_EQ(again.weights.layers[1].w2, model.weights.layers[1].w2);
}

// The engine's entry and exit (and GELU-tanh) against the double-precision reference, one query
// per prompt as eval builds them: no context, one pair, and prompts of 281 tokens, which span two
// row tiles (the second with padding rows) and read positions up to 280 of 300.
TEST(GargModel, EngineMatchesReference) {
  GargFile spec;
  spec.pairs = 150;
  const Model model = load_model(write_garg("long", spec));
  for (const bool bf16 : {false, true}) {
    EngineOptions options;
    options.bf16 = bf16;
    const Engine engine(model.config, model.weights, options);
    for (const std::int64_t k : {0, 1, 140}) {
      const std::int64_t prompts = 3, tokens = interleaved_prompt_tokens(k);
      const std::vector<float> input = random_prompts(prompts, k, 3, 40 + k);
      std::vector<float> scores(prompts);
      engine.query_scores(input, prompts, tokens, tokens - 1, scores);
      for (std::int64_t b = 0; b < prompts; ++b) {
        const Eigen::VectorXd expected =
            reference_scores(model.config, model.weights, prompt_matrix(input, b, tokens, 3), 0);
        const double scale = std::max(1.0, std::abs(expected[tokens - 1]));
        const double bound =
            score_bound(bf16 ? kEpsBf16 : kEpsF32, 2, std::max<std::int64_t>(48, tokens));
        EXPECT_LE(std::abs(scores[b] - expected[tokens - 1]) / scale, bound)
            << (bf16 ? "bf16" : "f32") << " k=" << k << " prompt " << b << ": engine " << scores[b]
            << ", reference " << expected[tokens - 1];
      }
    }
  }
}

// FLOPs of a causal forward: attention is credited with the T (T + 1) / 2 (query, key) pairs
// the mask lets it see, not T^2, in the config's count, the engine plan's and the op groups'.
// The plain file: d = 3, D = 12, 2 layers of 2 heads (dk = dv = 6), MLP 48.
TEST(GargModel, FlopsCountTheCausalPairs) {
  const Model model = load_model(write_garg("plain", GargFile{}));
  const double t = 11, d = 3, width = 12, heads = 2, head_dim = 6, hidden = 48;
  const double pairs = t * (t + 1) / 2;
  const double attention = 2 * heads * pairs * (head_dim + head_dim);         // Q K^T and the mix
  const double per_layer = 2 * t * width * 3 * width                          // c_attn: q, k, v
                           + attention + 2 * t * width * width                // c_proj
                           + 2 * t * width * hidden * 2;                      // c_fc and mlp.c_proj
  const double expected = 2 * per_layer + 2 * t * d * width + 2 * t * width;  // read-in, read-out
  const auto tokens = static_cast<std::int64_t>(t);
  EXPECT_DOUBLE_EQ(model.config.forward_flops(tokens, tokens - 1), expected);
  EngineOptions options;
  options.dense = true;  // every projection executed as the dense GEMM counted above
  const Engine engine(model.config, model.weights, options);
  EXPECT_DOUBLE_EQ(engine.forward_flops(tokens, tokens - 1), expected);
  const auto groups = Engine::op_group_flops(model.config, tokens, tokens - 1, false);
  EXPECT_DOUBLE_EQ(groups[static_cast<std::size_t>(OpGroup::kAttention)], 2 * attention);
}

// Same scores, to the bit, on one thread and two, batched or one prompt at a time.
TEST(GargModel, BitIdenticalAcrossThreadsAndBatchings) {
  const Model model = load_model(write_garg("plain", GargFile{}));
  const Engine engine(model.config, model.weights);
  const std::int64_t prompts = 9, tokens = interleaved_prompt_tokens(5);
  const std::vector<float> input = random_prompts(prompts, 5, 3, 3);
  std::vector<float> first(prompts), second(prompts), single(1);
  {
    tbb::global_control one(tbb::global_control::max_allowed_parallelism, 1);
    engine.query_scores(input, prompts, tokens, tokens - 1, first);
  }
  {
    tbb::global_control two(tbb::global_control::max_allowed_parallelism, 2);
    engine.query_scores(input, prompts, tokens, tokens - 1, second);
  }
  EXPECT_EQ(first, second);
  for (std::int64_t b = 0; b < prompts; ++b) {
    engine.query_scores(std::span(input).subspan(b * tokens * 3, tokens * 3), 1, tokens, tokens - 1,
                        single);
    EXPECT_EQ(single[0], first[b]) << "prompt " << b;
  }
}

TEST(GargModel, RefusesPromptsLongerThanItsPositions) {
  const Model model = load_model(write_garg("plain", GargFile{}));
  const Engine engine(model.config, model.weights);
  const std::vector<float> input = random_prompts(1, 6, 3, 1);  // 13 tokens > 12 positions
  std::vector<float> scores(1);
  try {
    engine.query_scores(input, 1, 13, 12, scores);
    FAIL() << "13 tokens ran on 12 positions";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("12 positions"), std::string::npos) << error.what();
  }
}

TEST(GargModel, BadFilesNameTheTensorOrKey) {
  auto expect_error = [](const GargFile& spec, const std::string& name, const std::string& text) {
    const std::string error = load_error(spec, name);
    EXPECT_NE(error.find(text), std::string::npos) << name << ": " << error;
  };
  GargFile missing;
  missing.dropped = {"_backbone.h.1.mlp.c_fc.bias"};
  expect_error(missing, "missing", "missing tensor '_backbone.h.1.mlp.c_fc.bias'");
  GargFile extra;
  extra.added = {"_backbone.wte.weight"};
  expect_error(extra, "extra", "tensor '_backbone.wte.weight': unexpected");
  GargFile third_layer;  // a layer the config does not have
  third_layer.added = {"_backbone.h.2.ln_1.weight"};
  expect_error(third_layer, "third_layer", "tensor '_backbone.h.2.ln_1.weight': unexpected");
  GargFile shape;
  shape.shape_changes = {{"_backbone.h.0.attn.c_attn.weight", {12, 24}}};
  expect_error(shape, "shape", "tensor '_backbone.h.0.attn.c_attn.weight': shape [12, 24]");
  GargFile transposed;  // a torch.nn.Linear layout where Conv1D's is expected
  transposed.shape_changes = {{"_backbone.h.0.mlp.c_fc.weight", {48, 12}}};
  expect_error(transposed, "transposed", "needs [12, 48]");
  GargFile positions;
  positions.shape_changes = {{"_backbone.wpe.weight", {10, 12}}};
  expect_error(positions, "positions", "tensor '_backbone.wpe.weight': shape [10, 12]");
  GargFile nan;
  nan.non_finite = "_read_out.weight";
  expect_error(nan, "nan", "'_read_out.weight' element 1 is not finite");
  GargFile bf16;
  bf16.bf16 = "_backbone.h.0.mlp.c_proj.weight";
  expect_error(bf16, "bf16",
               "tensor '_backbone.h.0.mlp.c_proj.weight': dtype is BF16, expected F32");
  GargFile heads;
  heads.heads = 5;
  expect_error(heads, "heads", "n_embd 12 is not a multiple of n_head 5");
  GargFile no_layers;
  no_layers.metadata_changes = {{"n_layer", ""}};
  expect_error(no_layers, "no_layers", "no 'n_layer'");
  GargFile claims_layers;  // metadata claiming far more than the file holds: refused before allocating
  claims_layers.metadata_changes = {{"n_layer", "100000000"}};
  expect_error(claims_layers, "claims_layers", "n_layer 100000000 and n_embd 12 need 12 tensors");
  GargFile claims_width;
  claims_width.metadata_changes = {{"n_embd", "120000"}, {"n_head", "1"}};
  expect_error(claims_width, "claims_width", "n_embd 120000 need 12 tensors and 48 n_embd^2 bytes per block");
  GargFile bad_integer;
  bad_integer.metadata_changes = {{"n_dims", "3.5"}};
  expect_error(bad_integer, "bad_integer", "n_dims must be a positive integer");
  GargFile version;
  version.metadata_changes = {{"format_version", "2"}};
  expect_error(version, "version", "format_version '2' is not supported");
  GargFile activation;
  activation.metadata_changes = {{"activation_function", "relu"}};
  expect_error(activation, "activation", "activation_function 'relu' is not supported");
}

// --- The shipped model against PyTorch -----------------------------------------------------------

struct CrossCheck {
  Model model;
  io::SafetensorsReader file;
  std::int64_t prompts, n, m;
  int d;
  std::span<const float> x, y, x_query, scores_query, scores_prompt;
  std::vector<double> scores_query_f64, scores_prompt_f64;
  double torch_f32_deviation;
};

std::vector<double> f64_values(const io::SafetensorsReader& file, const std::string& name) {
  const io::TensorInfo& info = *file.find(name);
  EXPECT_EQ(info.dtype, io::DType::kF64) << name;
  const std::span<const std::byte> bytes = file.bytes(info);
  std::vector<double> values(bytes.size() / sizeof(double));
  std::memcpy(values.data(), bytes.data(), bytes.size());
  return values;
}

// The engine's query scores (one pass per query: x_1, y_1, ..., x_n, y_n, x_q) and its scores at
// every x token of the plain prompt x_1, y_1, ..., x_n, y_n.
void engine_scores(const Engine& engine, const CrossCheck& check, std::vector<float>& query,
                   std::vector<float>& prompt) {
  const std::int64_t n = check.n, m = check.m, d = check.d;
  std::vector<float> tokens;
  for (std::int64_t p = 0; p < check.prompts; ++p) {
    for (std::int64_t j = 0; j < m; ++j) {
      const std::vector<float> one =
          interleaved_tokens(check.x.subspan(p * n * d, n * d), check.y.subspan(p * n, n),
                             check.x_query.subspan((p * m + j) * d, d), static_cast<int>(d));
      tokens.insert(tokens.end(), one.begin(), one.end());
    }
  }
  query.resize(check.prompts * m);
  engine.query_scores(tokens, check.prompts * m, 2 * n + 1, 2 * n, query);
  // The plain prompt is the query prompt of each task without its query token.
  tokens.clear();
  for (std::int64_t p = 0; p < check.prompts; ++p) {
    const std::vector<float> one =
        interleaved_tokens(check.x.subspan(p * n * d, n * d), check.y.subspan(p * n, n),
                           check.x_query.subspan(p * m * d, d), static_cast<int>(d));
    tokens.insert(tokens.end(), one.begin(), one.end() - d);
  }
  std::vector<float> all(check.prompts * 2 * n);
  engine.query_scores(tokens, check.prompts, 2 * n, 0, all);
  prompt.resize(check.prompts * n);
  for (std::int64_t p = 0; p < check.prompts; ++p)
    for (std::int64_t i = 0; i < n; ++i) prompt[p * n + i] = all[p * 2 * n + 2 * i];
}

TEST(GargCrossCheck, ShippedModelMatchesPyTorch) {
  const fs::path model_path = ICLBENCH_SHIPPED_MODEL;
  fs::path check_path = model_path;
  check_path.replace_extension(".crosscheck.safetensors");
  ASSERT_TRUE(fs::exists(model_path)) << model_path;
  ASSERT_TRUE(fs::exists(check_path)) << check_path;
  const Model model = load_model(model_path);
  const io::SafetensorsReader file(check_path);
  const auto& meta = file.metadata();
  ASSERT_EQ(meta.at("format"), "garg-gpt2-crosscheck");
  ASSERT_EQ(meta.at("model"), model_path.filename().string());
  const std::int64_t prompts = std::stoll(meta.at("prompts")), n = std::stoll(meta.at("n_context")),
                     m = std::stoll(meta.at("n_query"));
  const int d = model.config.input_dim;
  CrossCheck check{
      model, io::SafetensorsReader(check_path),          prompts, n, m, d, {}, {}, {}, {}, {}, {},
      {},    std::stod(meta.at("max_abs_f32_minus_f64"))};
  check.x = check.file.f32(*check.file.find("x"));
  check.y = check.file.f32(*check.file.find("y"));
  check.x_query = check.file.f32(*check.file.find("x_query"));
  check.scores_query = check.file.f32(*check.file.find("scores_query"));
  check.scores_prompt = check.file.f32(*check.file.find("scores_prompt"));
  check.scores_query_f64 = f64_values(check.file, "scores_query_f64");
  check.scores_prompt_f64 = f64_values(check.file, "scores_prompt_f64");
  ASSERT_EQ(check.x.size(), static_cast<std::size_t>(prompts * n * d));
  ASSERT_EQ(check.scores_query.size(), static_cast<std::size_t>(prompts * m));

  double scale = 1;
  for (double value : check.scores_query_f64) scale = std::max(scale, std::abs(value));
  for (double value : check.scores_prompt_f64) scale = std::max(scale, std::abs(value));

  // 1. The Eigen reference in double against PyTorch in float64, on the same f32 weights. They
  // differ only where the config holds f32 constants: the attention scale 1/sqrt(dh) (relative
  // rounding <= 2^-24 = 6e-8) and the LayerNorm epsilon 1e-5f; a relative change r of the scale
  // moves a score by about r |logit| |d score / d logit|, with logits of trained models below
  // ~10, so by well under 1e-6 of the score scale (measured: 2e-8). 1e-6 still catches any
  // difference of layout or formula: the erf GELU alone moves the scores by
  // max_abs_change_with_erf_gelu (~1e-4 of the scale).
  double reference_error = 0;
  for (std::int64_t p = 0; p < prompts; ++p) {
    for (std::int64_t j = 0; j < m; ++j) {
      const std::vector<float> one =
          interleaved_tokens(check.x.subspan(p * n * d, n * d), check.y.subspan(p * n, n),
                             check.x_query.subspan((p * m + j) * d, d), d);
      const Eigen::VectorXd scores =
          reference_scores(model.config, model.weights, prompt_matrix(one, 0, 2 * n + 1, d), 0);
      reference_error =
          std::max(reference_error, std::abs(scores[2 * n] - check.scores_query_f64[p * m + j]));
    }
  }
  std::printf("reference (f64) vs PyTorch f64: max |diff| %.3g (scale %.3g)\n", reference_error,
              scale);
  EXPECT_LE(reference_error / scale, 1e-6);

  // 2. The engine in f32 against PyTorch in float64 within the derived bound (K = the longest
  // dot product: 4D of the MLP, or the 2n + 1 keys), and against PyTorch's f32 scores within
  // that bound plus PyTorch's own f32 deviation.
  const std::int64_t k = std::max<std::int64_t>(4 * model.config.width, 2 * n + 1);
  const double bound = score_bound(kEpsF32, static_cast<int>(model.config.layers.size()), k);
  const double erf_change = std::stod(meta.at("max_abs_change_with_erf_gelu"));
  // The bound must be able to tell GELU's two forms apart, or the test would prove little.
  EXPECT_LT(bound * scale, erf_change / 2) << "the f32 bound cannot see the GELU form";
  for (const bool bf16 : {false, true}) {
    EngineOptions options;
    options.bf16 = bf16;
    const Engine engine(model.config, model.weights, options);
    std::vector<float> query, prompt;
    engine_scores(engine, check, query, prompt);
    double vs_f64 = 0, vs_f32 = 0;
    for (std::size_t i = 0; i < query.size(); ++i) {
      vs_f64 = std::max(vs_f64, std::abs(query[i] - check.scores_query_f64[i]));
      vs_f32 = std::max(vs_f32, std::abs(static_cast<double>(query[i]) - check.scores_query[i]));
    }
    for (std::size_t i = 0; i < prompt.size(); ++i) {
      vs_f64 = std::max(vs_f64, std::abs(prompt[i] - check.scores_prompt_f64[i]));
      vs_f32 = std::max(vs_f32, std::abs(static_cast<double>(prompt[i]) - check.scores_prompt[i]));
    }
    std::printf(
        "engine %s: max |engine - PyTorch f64| = %.3g, |engine - PyTorch f32| = %.3g "
        "(relative to %.3g: %.3g, %.3g; f32 bound %.3g)\n",
        bf16 ? "bf16" : "f32", vs_f64, vs_f32, scale, vs_f64 / scale, vs_f32 / scale, bound);
    if (bf16) {
      EXPECT_LE(vs_f64 / scale,
                score_bound(kEpsBf16, static_cast<int>(model.config.layers.size()), k));
    } else {
      EXPECT_LE(vs_f64 / scale, bound);
      EXPECT_LE(vs_f32, bound * scale + check.torch_f32_deviation);
    }
  }
}

}  // namespace
}  // namespace iclbench::model

// Model configs, model files, constructions: each construction, run by the plain Eigen reference
// forward, equals the algorithm it claims to run, computed directly in weight space.

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "io/safetensors.hpp"
#include "model/constructions.hpp"
#include "model/reference.hpp"
#include "model/resolve.hpp"
#include "model/weights.hpp"
#include "util/errors.hpp"
#include "util/philox.hpp"

namespace iclbench::model {
namespace {

namespace fs = std::filesystem;

// A separable task: isotropic Gaussian inputs, labels sign(w*.x).
struct Task {
  MatrixD x, queries;
  Eigen::VectorXd y;
};
Task make_task(int d, int n, int m, std::uint64_t seed) {
  Task task{MatrixD(n, d), MatrixD(m, d), Eigen::VectorXd(n)};
  util::DrawSequence draws(seed, 0, 0, util::Stream::kContextInput);
  Eigen::VectorXd w_star(d);
  for (int j = 0; j < d; ++j) w_star[j] = draws.normal();
  // Inputs are rounded to float, as the engine will see them.
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < d; ++j) task.x(i, j) = static_cast<float>(draws.normal());
    task.y[i] = task.x.row(i).dot(w_star) >= 0 ? 1.0 : -1.0;
  }
  for (int q = 0; q < m; ++q)
    for (int j = 0; j < d; ++j) task.queries(q, j) = static_cast<float>(draws.normal());
  return task;
}

MatrixD tokens_of(const Task& task) {
  const int d = static_cast<int>(task.x.cols());
  std::vector<float> x(task.x.data(), task.x.data() + task.x.size());
  std::vector<float> y(task.y.data(), task.y.data() + task.y.size());
  std::vector<float> q(task.queries.data(), task.queries.data() + task.queries.size());
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(task.x.data()[i]);
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = static_cast<float>(task.queries.data()[i]);
  const std::vector<float> tokens = icl_tokens(x, y, q, d);
  MatrixD result(task.x.rows() + task.queries.rows(), d + 4);
  for (Eigen::Index i = 0; i < result.size(); ++i) result.data()[i] = tokens[i];
  return result;
}

Eigen::VectorXd query_scores(const MatrixD& stream, const Task& task, int readout) {
  return stream.col(readout).tail(task.queries.rows());
}

// Both sides run in double; what differs is the float rounding of the constructed weights
// (eta, 1/tau, knots) and the order of operations, so agreement to ~1e-9 of the score scale
// (|w||x|, with |w| growing at most like L eta) is expected; 1e-7 leaves margin.
void expect_construction_matches(const std::string& text, int d, int n, int m) {
  const ConstructionSpec spec = parse_construction(text);
  const Model model = construct(spec, d);
  const Task task = make_task(d, n, m, 1234);
  const MatrixD stream = reference_forward(model.config, model.weights, tokens_of(task), n);
  const Eigen::VectorXd engine = query_scores(stream, task, model.config.readout);
  const Eigen::VectorXd direct = construction_scores(spec, task.x, task.y, task.queries);
  const double scale = std::max(1.0, direct.cwiseAbs().maxCoeff());
  for (int q = 0; q < m; ++q) {
    EXPECT_NEAR(engine[q], direct[q], 1e-7 * scale) << text << " query " << q;
  }
  // The construction did something: scores are not all zero.
  EXPECT_GT(direct.cwiseAbs().maxCoeff(), 1e-3) << text;
}

TEST(Constructions, GdLeastSquaresIsGradientDescentOnTheSquaredLoss) {
  expect_construction_matches("gd-ls:L=1,eta=1", 5, 40, 7);
  expect_construction_matches("gd-ls:L=25,eta=0.3", 7, 33, 5);
}

TEST(Constructions, GdPlusPlusIsPreconditionedGradientDescent) {
  expect_construction_matches("gd++:L=1,eta=0.5,gamma=0.2", 4, 30, 6);
  expect_construction_matches("gd++:L=6,eta=0.5,gamma=0.1", 6, 50, 6);
}

TEST(Constructions, GdHingeIsGradientDescentOnTheRampHinge) {
  expect_construction_matches("gd-hinge:L=1,eta=1,tau=0.5", 5, 40, 7);
  expect_construction_matches("gd-hinge:L=40,eta=2,tau=0.5", 6, 64, 9);
}

TEST(Constructions, GdLogisticIsGradientDescentOnThePiecewiseLinearLogistic) {
  expect_construction_matches("gd-logistic:L=1,eta=1,K=8,R=6", 5, 40, 7);
  expect_construction_matches("gd-logistic:L=30,eta=2,K=16,R=8", 6, 64, 9);
}

TEST(Constructions, KernelIsNadarayaWatson) {
  expect_construction_matches("kernel:beta=1", 5, 40, 7);
  expect_construction_matches("kernel:beta=0.25", 3, 17, 4);
}

TEST(Constructions, GdLsWithOneStepIsTheAveragingEstimator) {
  const Task task = make_task(6, 50, 8, 7);
  const Eigen::VectorXd averaging = task.queries * (task.x.transpose() * task.y) * (0.7 / 50);
  const Eigen::VectorXd gd = gd_least_squares_scores(task.x, task.y, task.queries, 1, 0.7);
  EXPECT_LT((gd - averaging).cwiseAbs().maxCoeff(), 1e-12);
}

TEST(Constructions, PiecewiseLinearSigmoidIsWithinItsInterpolationBound) {
  for (const auto& [segments, range] : {std::pair{4, 4.0}, {16, 8.0}, {64, 8.0}, {10, 3.0}}) {
    const double bound = 0.048 * range * range / (segments * segments);
    double worst = 0;
    for (int i = 0; i <= 20000; ++i) {
      const double z = -range + 2 * range * i / 20000.0;
      worst = std::max(worst, std::abs(pl_sigmoid(z, segments, range) - 1 / (1 + std::exp(-z))));
    }
    EXPECT_LE(worst, bound) << "K=" << segments << " R=" << range;
    EXPECT_GT(worst, bound / 20) << "the bound is not vacuous";
    // Symmetry psi(-z) = 1 - psi(z), which the construction's t - psi(p) form relies on.
    for (double z : {-7.3, -1.0, 0.3, 2.9}) {
      EXPECT_NEAR(pl_sigmoid(-z, segments, range), 1 - pl_sigmoid(z, segments, range), 1e-15);
    }
  }
}

TEST(Constructions, HingeMlpComputesTheRampDerivativeOnContextTokens) {
  // One MLP application on many (y, p) pairs, against the clamp formula.
  const Model model = construct(parse_construction("gd-hinge:L=1,eta=1,tau=0.3"), 1);
  ModelConfig mlp_only = model.config;
  mlp_only.layers.resize(1);
  Weights weights = model.weights;
  weights.layers.resize(1);
  const Slots s{1};
  MatrixD tokens = MatrixD::Zero(2 * 401, s.width());
  for (int i = 0; i <= 400; ++i) {
    for (int label = 0; label < 2; ++label) {
      const int row = 2 * i + label;
      tokens(row, s.y()) = label ? 1.0 : -1.0;
      tokens(row, s.p()) = -5.0 + 10.0 * i / 400;
      tokens(row, s.g()) = 0.37 * i - 3;  // stale g must be replaced, not added to
      tokens(row, s.c()) = 1.0;
    }
  }
  const MatrixD out = reference_forward(mlp_only, weights, tokens, tokens.rows());
  for (Eigen::Index row = 0; row < tokens.rows(); ++row) {
    const double y = tokens(row, s.y()), p = tokens(row, s.p());
    const double expected = y * std::clamp((1 + 0.3 - y * p) / 0.3, 0.0, 1.0);
    ASSERT_NEAR(out(row, s.g()), expected, 1e-6) << "y=" << y << " p=" << p;
  }
}

TEST(ConstructionSpecs, ParsesDefaultsAndCanonicalText) {
  const ConstructionSpec spec = parse_construction("gd-hinge:L=500,eta=1,tau=0.5");
  EXPECT_EQ(spec.kind, ConstructionKind::kGdHinge);
  EXPECT_EQ(spec.steps, 500);
  EXPECT_EQ(spec.text, "gd-hinge:L=500,eta=1,tau=0.5");
  EXPECT_EQ(parse_construction("kernel").text, "kernel:beta=1");
  EXPECT_EQ(parse_construction("gd-logistic:R=4").text, "gd-logistic:L=1,eta=1,K=16,R=4");
  EXPECT_EQ(parse_construction("gd-ls:eta=0.5,L=3").text, "gd-ls:L=3,eta=0.5");
}

TEST(ConstructionSpecs, RejectsMalformedSpecsClearly) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"gd-foo:L=1", "unknown model 'gd-foo'"},
      {"gd-ls:L=0", "L must be an integer in [1,"},
      {"gd-ls:L=2.5", "L must be an integer"},
      {"gd-ls:L=abc", "L must be an integer in [1, 1000000] written in decimal digits, got 'abc'"},
      {"gd-ls:L=nan", "L must be an integer"},
      // Issue 15: counts are integers in decimal digits, never rounded from a real ("1e3" ran
      // 1000 steps, "3.0" ran 3); reals are decimal (no hexadecimal float).
      {"gd-ls:L=1e3", "L must be an integer in [1, 1000000] written in decimal digits, got '1e3'"},
      {"gd-ls:L=3.0", "got '3.0'"},
      {"encoder:H=2.0", "H must be an integer in [1, 1024] written in decimal digits, got '2.0'"},
      {"gd-logistic:K=+8", "K must be an integer"},
      {"gd-ls:eta=0x1p-3", "eta='0x1p-3' is not a finite number"},
      {"gd-ls:eta=nan", "is not a finite number"},
      {"gd-ls:eta=-1", "eta must be > 0"},
      {"gd-ls:tau=0.5", "has no parameter 'tau'"},
      {"gd-ls:L=1,L=2", "L given twice"},
      {"gd-ls:L", "is not key=value"},
      {"gd-ls:", "nothing after ':'"},
      {"gd-ls:L=1,", "trailing ','"},
      {"gd-hinge:tau=0", "tau must be > 0"},
      {"gd++:gamma=-0.1", "gamma must be >= 0"},
      {"gd-logistic:K=0", "K must be an integer"},
      {"", "unknown model ''"},
      {"gd-logistic:L=3,eta=2e98,R=4", "eta must have magnitude in"},  // found by fuzzing
      {"gd-hinge:tau=1e-300", "tau must have magnitude in"},
  };
  for (const auto& [text, expected] : cases) {
    try {
      parse_construction(text);
      ADD_FAILURE() << "accepted '" << text << "'";
    } catch (const SpecError& error) {
      EXPECT_NE(std::string(error.what()).find(expected), std::string::npos)
          << text << ": " << error.what();
    }
  }
}

TEST(ModelFiles, RoundTripKeepsConfigAndEveryWeight) {
  const fs::path dir = fs::path(ICLBENCH_TEST_TMPDIR) / "model_files";
  fs::create_directories(dir);
  ModelConfig config;
  config.name = "encoder";
  config.width = 10;
  LayerConfig layer;
  layer.attention_norm = layer.mlp_norm = true;
  layer.attention = AttentionKind::kSoftmax;
  layer.heads = 2;
  layer.qk_dim = 3;
  layer.v_dim = 4;
  layer.scale = 0.5f;
  layer.mask = Mask::kCausal;
  layer.mlp_hidden = 7;
  layer.activation = Activation::kGelu;
  layer.loop = 2;
  config.layers = {layer, layer};
  const Weights weights = random_weights(config, 5);
  save_model(dir / "m.safetensors", config, weights, io::Overwrite::kAllow);
  const Model loaded = load_model(dir / "m.safetensors");
  EXPECT_EQ(loaded.config, config);
  Weights a = weights, b = loaded.weights;
  const auto expected = weight_tensors(config, a), found = weight_tensors(config, b);
  ASSERT_EQ(expected.size(), found.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(*expected[i].values, *found[i].values) << expected[i].name;
  }
  // A constructed model survives the trip too.
  const Model constructed = construct(parse_construction("gd-hinge:L=3"), 4);
  save_model(dir / "c.safetensors", constructed.config, constructed.weights, io::Overwrite::kAllow);
  EXPECT_EQ(load_model(dir / "c.safetensors").config, constructed.config);
}

TEST(ModelFiles, RejectsMalformedModelFiles) {
  const fs::path dir = fs::path(ICLBENCH_TEST_TMPDIR) / "model_files";
  fs::create_directories(dir);
  const Model model = construct(parse_construction("gd-ls:L=2"), 3);
  const fs::path path = dir / "bad.safetensors";
  auto expect_rejected = [&](std::map<std::string, std::string> metadata,
                             std::vector<io::TensorToWrite> tensors, const std::string& expected) {
    {
      io::SafetensorsWriter writer(path, metadata, tensors, io::Overwrite::kAllow);
      for (const auto& tensor : tensors) {
        std::int64_t count = 1;
        for (auto extent : tensor.shape) count *= extent;
        std::vector<float> values(count, 0.5f);
        if (tensor.name == "nan") values[0] = NAN;
        writer.write_f32(tensor.name, 0, values);
      }
      writer.commit();
    }
    try {
      load_model(path);
      ADD_FAILURE() << "accepted: " << expected;
    } catch (const io::FormatError& error) {
      EXPECT_NE(std::string(error.what()).find(expected), std::string::npos) << error.what();
    }
  };
  const std::string config = to_json(model.config).dump();
  Weights copy = model.weights;
  std::vector<io::TensorToWrite> good;
  for (const auto& tensor : weight_tensors(model.config, copy)) {
    good.push_back({tensor.name, io::DType::kF32, tensor.shape});
  }
  const std::map<std::string, std::string> meta = {{"format", "iclbench-model"}, {"config", config}};

  expect_rejected({{"format", "iclbench-dataset"}, {"config", config}}, good, "not an iclbench model");
  expect_rejected({{"format", "iclbench-model"}}, good, "has no 'config'");
  expect_rejected({{"format", "iclbench-model"}, {"config", "{not json"}}, good, "not valid JSON");
  auto bad_version = to_json(model.config);
  bad_version["format_version"] = 9;
  expect_rejected({{"format", "iclbench-model"}, {"config", bad_version.dump()}}, good,
                  "format version 9 is not supported");
  auto bad_kind = to_json(model.config);
  bad_kind["layers"][0]["attention"] = "cosine";
  expect_rejected({{"format", "iclbench-model"}, {"config", bad_kind.dump()}}, good,
                  "unknown value 'cosine'");
  auto missing_field = to_json(model.config);
  missing_field["layers"][0].erase("heads");
  expect_rejected({{"format", "iclbench-model"}, {"config", missing_field.dump()}}, good,
                  "missing field 'heads'");
  auto zero_width = to_json(model.config);
  zero_width["width"] = 0;
  expect_rejected({{"format", "iclbench-model"}, {"config", zero_width.dump()}}, good,
                  "width must be in [1, 65536]");
  // Issue 15: the config JSON takes no unknown key (at the top or in a layer), no repeated key, no
  // NUL with garbage after it; the file's __metadata__ holds only what save_model() writes.
  auto unknown_key = to_json(model.config);
  unknown_key["widht"] = 5;
  expect_rejected({{"format", "iclbench-model"}, {"config", unknown_key.dump()}}, good,
                  "model config: 'widht' is not a known key");
  auto unknown_layer_key = to_json(model.config);
  unknown_layer_key["layers"][0]["mlp_hiden"] = 4;
  expect_rejected({{"format", "iclbench-model"}, {"config", unknown_layer_key.dump()}}, good,
                  "model config: layer 0: 'mlp_hiden' is not a known key");
  expect_rejected({{"format", "iclbench-model"}, {"config", "{\"width\":7," + config.substr(1)}}, good,
                  "model config: duplicate key 'width'");
  expect_rejected({{"format", "iclbench-model"}, {"config", config + std::string(1, '\0') + "garbage"}}, good,
                  "model config: not valid JSON: a NUL byte at offset " + std::to_string(config.size()));
  auto extra_meta = meta;
  extra_meta["note"] = "x";
  expect_rejected(extra_meta, good, "__metadata__ key 'note' is not one of an iclbench model's");
  auto wrong_shape = good;
  wrong_shape[0].shape = {3, 4};
  expect_rejected(meta, wrong_shape, "does not match the config");
  auto missing = good;
  missing.pop_back();
  expect_rejected(meta, missing, "its config needs");
  auto renamed = good;
  renamed[1].name = "nan";
  expect_rejected(meta, renamed, "missing tensor");
}

// A model is sized before it is built: the config a recipe or a file's header gives must be the
// built model's own, and build() must give what construct() and load_model() give.
TEST(ModelSources, ConfigWithoutWeightsIsTheBuiltModelsConfig) {
  for (const char* text : {"gd-ls:L=3,eta=0.5", "gd++:gamma=0.1", "gd-hinge:L=7", "gd-logistic:K=8",
                           "kernel:beta=2", "encoder:D=16,H=2,F=32,layers=2"}) {
    const ConstructionSpec spec = parse_construction(text);
    const Model built = construct(spec, 5, 9);
    EXPECT_EQ(construction_config(spec, 5), built.config) << text;
    const ModelSource source = ModelSource::resolve(text, 5, 9);
    EXPECT_EQ(source.config(), built.config) << text;
    const Model rebuilt = source.build();
    Weights a = built.weights, b = rebuilt.weights;
    const auto expected = weight_tensors(built.config, a), found = weight_tensors(built.config, b);
    ASSERT_EQ(expected.size(), found.size()) << text;
    for (std::size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(*expected[i].values, *found[i].values) << text << " " << expected[i].name;
    }
  }
  EXPECT_THROW(construction_config(parse_construction("gd-ls"), 0), util::ParameterError);

  const fs::path dir = fs::path(ICLBENCH_TEST_TMPDIR) / "model_sources";
  fs::create_directories(dir);
  const Model hinge = construct(parse_construction("gd-hinge:L=4"), 6);
  const fs::path file = dir / "hinge.safetensors";
  save_model(file, hinge.config, hinge.weights, io::Overwrite::kAllow);
  EXPECT_EQ(read_model_config(io::SafetensorsReader(file)), hinge.config);
  const ModelSource from_file = ModelSource::resolve(file.string(), 6, 0);
  EXPECT_EQ(from_file.config(), hinge.config);
  EXPECT_EQ(from_file.text(), file.string());
  EXPECT_EQ(from_file.build().weights.layers[1].wq, hinge.weights.layers[1].wq);
  EXPECT_THROW(ModelSource::resolve(file.string(), 7, 0), SpecError);  // built for d = 6
}

TEST(ModelConfigs, FlopsCountTheIclAssociation) {
  const Model model = construct(parse_construction("gd-ls:L=1"), 4);  // D = 8, dk = 4, dv = 1
  // T = 10 tokens, n = 6 context: Q 2*10*8*4, K/V 2*6*8*5, K^T V 2*6*4, Q M 2*10*4, W_o 2*10*8.
  EXPECT_DOUBLE_EQ(model.config.forward_flops(10, 6),
                   2.0 * 10 * 8 * 4 + 2.0 * 6 * 8 * 5 + 2.0 * 6 * 4 + 2.0 * 10 * 4 + 2.0 * 10 * 8);
}

}  // namespace
}  // namespace iclbench::model

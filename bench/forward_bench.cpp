// Whole-forward benchmarks, in f32 and bf16 with 1 and 2 TBB threads where that matters:
//   the standard encoder (pre-LN, GELU, D = 64, H = 4, FFN 256, 4 layers, T = 129, 64 prompts,
//     random weights from a fixed seed), whole and one layer;
//   one BERT-base layer (T = 128, D = 768, H = 12, FFN 3072, 8 prompts);
//   a constructed learner (gd-hinge);
//   the icl shapes: linear Q(K^T V) (gd-ls) against softmax attention (kernel) on the icl mask,
//     d in {8, 16, 32, 64}, N context examples in {64 ... 4096}, 64 queries;
//   end-to-end `eval` of the constructed learners (prompt assembly, forward, probes, metrics).

#include <benchmark/benchmark.h>
#include <tbb/global_control.h>

#include <memory>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "data_gen/dataset.hpp"
#include "eval/evaluate.hpp"
#include "model/constructions.hpp"
#include "model/engine.hpp"
#include "model/resolve.hpp"
#include "util/philox.hpp"

namespace iclbench::bench {
namespace {

std::vector<float> gaussian_tokens(std::int64_t count, std::uint64_t seed) {
  std::vector<float> out(static_cast<std::size_t>(count));
  util::DrawSequence draws(seed, 0, 0, util::Stream::kContextInput);
  for (float& value : out) value = static_cast<float>(draws.normal());
  return out;
}

// Runs one forward per iteration over `prompts` prompts of `tokens` tokens (n in context).
void run_forward(benchmark::State& state, const std::string& spec, int d, std::int64_t prompts,
                 std::int64_t tokens, std::int64_t context, bool bf16, int threads) {
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
  const model::Model built = model::construct(model::parse_construction(spec), d, 1);
  model::EngineOptions options;
  options.bf16 = bf16;
  const model::Engine engine(built.config, built.weights, options);
  const std::vector<float> input = gaussian_tokens(prompts * tokens * built.config.width, 2);
  std::vector<float> out(input.size());
  engine.forward(input, prompts, tokens, context, out);  // builds the primitives, untimed
  for (auto _ : state) {
    engine.forward(input, prompts, tokens, context, out);
    benchmark::DoNotOptimize(out.data());
  }
  set_counters(state, built.config.forward_flops(tokens, context) * static_cast<double>(prompts),
               static_cast<double>(prompts * tokens), static_cast<double>(prompts), bf16, threads);
}

void BM_Encoder(benchmark::State& state) {
  run_forward(state, "encoder:D=64,H=4,F=256,layers=4", 0, 64, 129, 129, state.range(0) != 0,
              static_cast<int>(state.range(1)));
}
BENCHMARK(BM_Encoder)->ArgNames({"bf16", "threads"})->ArgsProduct({{0, 1}, {1, 2}})->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_EncoderLayer(benchmark::State& state) {
  run_forward(state, "encoder:D=64,H=4,F=256,layers=1", 0, 64, 129, 129, state.range(0) != 0,
              static_cast<int>(state.range(1)));
}
BENCHMARK(BM_EncoderLayer)->ArgNames({"bf16", "threads"})->ArgsProduct({{0, 1}, {1, 2}})->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_BertBaseLayer(benchmark::State& state) {
  run_forward(state, "encoder:D=768,H=12,F=3072,layers=1", 0, 8, 128, 128, state.range(0) != 0,
              static_cast<int>(state.range(1)));
}
BENCHMARK(BM_BertBaseLayer)->ArgNames({"bf16", "threads"})->ArgsProduct({{0, 1}, {1, 2}})->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_GdHinge(benchmark::State& state) {
  run_forward(state, "gd-hinge:L=100,eta=2,tau=0.5", 32, 1, 2048, 1024, false, static_cast<int>(state.range(0)));
}
BENCHMARK(BM_GdHinge)->ArgNames({"threads"})->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

// One prompt of N context examples and 64 queries in dimension d, on the icl mask.
void BM_IclLinearAttention(benchmark::State& state) {
  run_forward(state, "gd-ls:L=1", static_cast<int>(state.range(0)), 1, state.range(1) + 64, state.range(1),
              false, 1);
}
void BM_IclSoftmaxAttention(benchmark::State& state) {
  run_forward(state, "kernel:beta=1", static_cast<int>(state.range(0)), 1, state.range(1) + 64,
              state.range(1), false, 1);
}
const std::vector<std::vector<std::int64_t>> kIclShapes = {{8, 16, 32, 64}, {64, 256, 1024, 4096}};
BENCHMARK(BM_IclLinearAttention)->ArgNames({"d", "N"})->ArgsProduct(kIclShapes)->UseRealTime();
BENCHMARK(BM_IclSoftmaxAttention)->ArgNames({"d", "N"})->ArgsProduct(kIclShapes)->UseRealTime();

// End-to-end `iclbench eval` of one constructed learner, without heads: 64 tasks (d = 16,
// N = 256, 64 queries) generated once outside the timed loop; per iteration the prompts are
// assembled, run, probed for linearity and summarised (1000 bootstrap resamples), as the CLI does.
const char* const kEvalLearners[] = {"gd-ls:L=1", "gd-hinge:L=100,eta=2,tau=0.5", "kernel:beta=1"};
void BM_Eval(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(1));
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
  data::TaskSpec spec;
  spec.dim = 16;
  spec.n_examples = 256;
  spec.n_queries = 64;
  spec.n_tasks = 64;
  spec.seed = 3;
  const data::Dataset dataset = data::Dataset::generate_unnamed(spec);
  const eval::EvalConfig config;
  const std::vector<model::ModelSource> models = {
      model::ModelSource::resolve(kEvalLearners[state.range(0)], static_cast<int>(spec.dim), 0)};
  eval::evaluate(dataset, models, config);  // warm-up, untimed: fills oneDNN's primitive cache
  double flops = 0;
  for (auto _ : state) {
    const eval::EvalResult result = eval::evaluate(dataset, models, config);
    flops = result.learners.front().flops;
    benchmark::DoNotOptimize(result.learners.data());
  }
  set_counters(state, flops, 0, static_cast<double>(spec.n_tasks), false, threads);
  state.SetLabel(kEvalLearners[state.range(0)]);
}
BENCHMARK(BM_Eval)->ArgNames({"learner", "threads"})->ArgsProduct({{0, 1, 2}, {1, 2}})->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace iclbench::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("gemm_peak_gflops_f32", std::to_string(iclbench::bench::gemm_peak_gflops(false)));
  benchmark::AddCustomContext("gemm_peak_gflops_bf16", std::to_string(iclbench::bench::gemm_peak_gflops(true)));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

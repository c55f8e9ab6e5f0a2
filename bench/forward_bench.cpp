// Whole-forward benchmarks, in f32 and bf16 with 1 and 2 TBB threads where that matters:
//   the GEMM peak's own problem (to compare CPU times on a loaded host);
//   the standard encoder (pre-LN, GELU, D = 64, H = 4, FFN 256, 4 layers, T = 129, 64 prompts,
//     random weights from a fixed seed), whole and one layer;
//   one BERT-base layer (T = 128, D = 768, H = 12, FFN 3072, 8 prompts);
//   both again with the unfused attention ops (1 thread), against the fused kernel;
//   a constructed learner (gd-hinge), and gd-hinge at issue 14's shape structured against dense;
//   the icl shapes: linear Q(K^T V) (gd-ls) against softmax attention (kernel) on the icl mask,
//     d in {8, 16, 32, 64}, N context examples in {64 ... 4096}, 64 queries;
//   end-to-end `eval` of the constructed learners (prompt assembly, forward, probes, metrics).

#include <benchmark/benchmark.h>
#include <tbb/global_control.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "data_gen/dataset.hpp"
#include "eval/evaluate.hpp"
#include "model/constructions.hpp"
#include "model/engine.hpp"
#include "model/resolve.hpp"
#include "ops/dnnl_ops.hpp"
#include "util/philox.hpp"

namespace iclbench::bench {
namespace {

std::vector<float> gaussian_tokens(std::int64_t count, std::uint64_t seed) {
  std::vector<float> out(static_cast<std::size_t>(count));
  util::DrawSequence draws(seed, 0, 0, util::Stream::kContextInput);
  for (float& value : out) value = static_cast<float>(draws.normal());
  return out;
}

// After the timed loop, a few forwards on an engine that times its ops by group
// (EngineOptions::time_op_groups), reported as counters: share_<group>, the group's share of the
// summed thread time, and frac_<group>, its FLOPs over its thread-seconds as a fraction of the
// single-thread GEMM peak (groups without matmuls get no frac_). The op clocks are wall-clock
// (model::OpGroupClock says why), the peak per CPU-second: on a loaded host frac_ is lower than
// peak_frac by the time the thread waited for a CPU. The timed loop's engine does not time its
// ops.
void op_group_counters(benchmark::State& state, const model::Model& built, model::EngineOptions options,
                       const std::vector<float>& input, std::int64_t prompts, std::int64_t tokens,
                       std::int64_t context) {
  options.time_op_groups = true;
  const model::Engine engine(built.config, built.weights, options);
  std::vector<float> out(input.size());
  engine.forward(input, prompts, tokens, context, out);
  engine.take_op_group_times(tokens, context);  // forgets the run that built the plan
  for (int run = 0; run < 3; ++run) engine.forward(input, prompts, tokens, context, out);
  const model::OpGroupTimes times = engine.take_op_group_times(tokens, context);
  double total = 0;
  for (const double seconds : times.seconds) total += seconds;
  const double peak = gemm_peak_gflops(options.bf16) * 1e9;
  for (std::size_t group = 0; group < model::kOpGroupCount; ++group) {
    const std::string name = model::to_string(static_cast<model::OpGroup>(group));
    if (total > 0) state.counters["share_" + name] = times.seconds[group] / total;
    if (times.flops[group] > 0 && times.seconds[group] > 0) {
      state.counters["frac_" + name] = times.flops[group] / times.seconds[group] / peak;
    }
  }
}

// Runs one forward per iteration over `prompts` prompts of `tokens` tokens (n in context).
// `options`: e.g. dense (no plan-time weight structure) or unfused attention; bf16 is set from
// `bf16`. FLOPs are what the plan executes.
void run_forward(benchmark::State& state, const std::string& spec, int d, std::int64_t prompts,
                 std::int64_t tokens, std::int64_t context, bool bf16, int threads,
                 model::EngineOptions options = {}) {
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
  const model::Model built = model::construct(model::parse_construction(spec), d, 1);
  options.bf16 = bf16;
  const model::Engine engine(built.config, built.weights, options);
  const std::vector<float> input = gaussian_tokens(prompts * tokens * built.config.width, 2);
  std::vector<float> out(input.size());
  engine.forward(input, prompts, tokens, context, out);  // builds the primitives, untimed
  const double peak = gemm_peak_gflops(bf16);  // measured once per process: before the clock
  benchmark::DoNotOptimize(peak);
  const LoopCpuTime cpu;
  for (auto _ : state) {
    engine.forward(input, prompts, tokens, context, out);
    benchmark::DoNotOptimize(out.data());
  }
  const double cpu_seconds = cpu.seconds();
  set_counters(state, engine.forward_flops(tokens, context) * static_cast<double>(prompts),
               static_cast<double>(prompts * tokens), static_cast<double>(prompts), bf16, cpu_seconds);
  op_group_counters(state, built, options, input, prompts, tokens, context);
  state.SetLabel(std::string("attention=") + engine.implementations(tokens, context)["attention"]);
}

// The in-process GEMM peak's problem (ops::gemm_peak_gflops: 1024^3, one thread) as a benchmark
// of its own, so that a run on a loaded host can compare CPU times: a forward's FLOPs per CPU
// second over this one's is its fraction of the peak with the time it was descheduled left out.
void BM_GemmPeak(benchmark::State& state) {
  constexpr std::int64_t kSize = 1024;
  const bool bf16 = state.range(0) != 0;
  const ops::DType dtype = bf16 ? ops::DType::kBF16 : ops::DType::kF32;
  std::vector<float> weights(kSize * kSize, 0.01f), bias(kSize, 0.0f), dst(kSize * kSize);
  std::vector<std::uint16_t> src_bf16(kSize * kSize, 0x3c00);
  std::vector<float> src_f32(kSize * kSize, 0.5f);
  const ops::Linear gemm(ops::Layout::rows(kSize, kSize, kSize, dtype), weights, bias,
                         ops::Layout::rows(kSize, kSize, kSize, ops::DType::kF32), ops::PostActivation::kNone, false);
  std::vector<std::byte> scratch(gemm.scratchpad_bytes() + 64);
  const void* src = bf16 ? static_cast<const void*>(src_bf16.data()) : src_f32.data();
  gemm.execute(src, dst.data(), scratch.data());
  for (auto _ : state) {
    gemm.execute(src, dst.data(), scratch.data());
    benchmark::DoNotOptimize(dst.data());
  }
  set_counters(state, 2.0 * kSize * kSize * kSize, 0, 0, bf16);
}
BENCHMARK(BM_GemmPeak)->ArgNames({"bf16"})->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

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

model::EngineOptions unfused_attention() {
  model::EngineOptions options;
  options.unfused_attention = true;
  return options;
}

model::EngineOptions dense_if(bool dense) {
  model::EngineOptions options;
  options.dense = dense;
  return options;
}

// The encoder and BERT-base layer with attention as separate scores, softmax and mix ops (the
// engine's path before ops::FusedAttention), 1 thread: the end-to-end A/B of the fused kernel.
void BM_EncoderUnfused(benchmark::State& state) {
  run_forward(state, "encoder:D=64,H=4,F=256,layers=4", 0, 64, 129, 129, state.range(0) != 0, 1,
              unfused_attention());
}
BENCHMARK(BM_EncoderUnfused)->ArgNames({"bf16"})->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_BertBaseLayerUnfused(benchmark::State& state) {
  run_forward(state, "encoder:D=768,H=12,F=3072,layers=1", 0, 8, 128, 128, state.range(0) != 0, 1,
              unfused_attention());
}
BENCHMARK(BM_BertBaseLayerUnfused)->ArgNames({"bf16"})->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_BertBaseLayer(benchmark::State& state) {
  run_forward(state, "encoder:D=768,H=12,F=3072,layers=1", 0, 8, 128, 128, state.range(0) != 0,
              static_cast<int>(state.range(1)));
}
BENCHMARK(BM_BertBaseLayer)->ArgNames({"bf16", "threads"})->ArgsProduct({{0, 1}, {1, 2}})->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_GdHinge(benchmark::State& state) {
  run_forward(state, "gd-hinge:L=100,eta=2,tau=0.5", 32, 1, 2048, 1024, false, static_cast<int>(state.range(0)));
}
BENCHMARK(BM_GdHinge)->ArgNames({"threads"})->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

// Issue 14's shape for plan-time weight structure: gd-hinge L = 2000, d 16, N 4096 context
// examples and 64 queries, 8 prompts (prompt-major on 2 threads), structured against dense; one
// iteration each (the dense one takes seconds): give --benchmark_repetitions for medians.
void BM_GdHingeStructure(benchmark::State& state) {
  run_forward(state, "gd-hinge:L=2000,eta=2,tau=0.5", 16, 8, 4096 + 64, 4096, false,
              static_cast<int>(state.range(1)), dense_if(state.range(0) != 0));
}
BENCHMARK(BM_GdHingeStructure)->ArgNames({"dense", "threads"})->ArgsProduct({{0, 1}, {2}})->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(1);

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
  benchmark::DoNotOptimize(gemm_peak_gflops(false));  // measured once per process: before the clock
  double flops = 0;
  const LoopCpuTime cpu;
  for (auto _ : state) {
    const eval::EvalResult result = eval::evaluate(dataset, models, config);
    flops = result.learners.front().flops;
    benchmark::DoNotOptimize(result.learners.data());
  }
  set_counters(state, flops, 0, static_cast<double>(spec.n_tasks), false, cpu.seconds());
  state.SetLabel(kEvalLearners[state.range(0)]);
}
BENCHMARK(BM_Eval)->ArgNames({"learner", "threads"})->ArgsProduct({{0, 1, 2}, {1, 2}})->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace iclbench::bench

int main(int argc, char** argv) {
  if (const std::string error = iclbench::bench::check_benchmark_flags(argc, argv); !error.empty()) {
    std::fprintf(stderr, "forward_bench: %s\n", error.c_str());
    return 2;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;  // only if this library lacks one of 1.7.1's flags
  benchmark::AddCustomContext("gemm_peak_gflops_f32", std::to_string(iclbench::bench::gemm_peak_gflops(false)));
  benchmark::AddCustomContext("gemm_peak_gflops_bf16", std::to_string(iclbench::bench::gemm_peak_gflops(true)));
  // None ran: the filter did not compile or selected nothing (Google Benchmark said which).
  const std::size_t ran = benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return ran == 0 ? 2 : 0;
}

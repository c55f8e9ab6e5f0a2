#pragma once
// Counter-based randomness. Every random number the suite draws (tasks, model weights, bootstrap
// resamples, context subsets, probe queries) is a pure function of (seed, task index, example
// index, stream, attempt, draw index): Philox4x32-10 (Random123) keyed by the seed and fed that
// tuple as its counter. No state is carried between draws, so results cannot depend on thread
// count, chunking, or the order in which tasks are generated.
//
// Header-only and free of SIMD-dependent code, so that the portable data generator and the
// native-compiled layers above it draw identical numbers (see the top-level CMakeLists.txt).

#include <Random123/philox.h>

#include <array>
#include <cmath>
#include <cstdint>

namespace iclbench::util {

// What a draw is used for. Distinct streams never share a counter, so adding draws to one stream
// (say, more rejection attempts) never changes the numbers of another.
enum class Stream : std::uint32_t {
  kWStar = 1,
  kContextInput = 2,
  kQueryInput = 3,
  kContextLabelNoise = 4,
  kTaskGeometry = 5,  // rotation, orthant or subspace of a task
  kQueryCopy = 6,     // which context example an `overlap` query copies
  kMixtureLabel = 7,  // component of a `gmm` context example
  kQueryLabelNoise = 8,
  kQueryMixtureLabel = 9,
  kModelWeights = 10,  // random initialisation of model weights (benchmarks, tests)
  kBootstrap = 11,     // resampling of tasks for confidence intervals
  kContextSubset = 12, // the k examples of a `random:k` context
  kProbe = 13,         // probe queries that test whether a model's score is linear in x_q
};

// The sequence of draws addressed by (seed, task, example, stream, attempt): 32-bit words in
// blocks of four, one Philox call per block, block number = draw index.
class DrawSequence {
 public:
  // Attempt counts rejection-sampling retries; it shares the counter word with the stream.
  static constexpr std::uint32_t kMaxAttempts = 1u << 24;

  DrawSequence(std::uint64_t seed, std::uint32_t task, std::uint32_t example, Stream stream,
               std::uint32_t attempt = 0)
      : key_{{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}},
        counter_{{task, example, 0, static_cast<std::uint32_t>(stream) | (attempt << 8)}} {}

  std::uint32_t bits() {
    if (next_word_ == 4) refill();
    return block_[next_word_++];
  }

  // Uniform on the open interval (0, 1), with 32 random bits: never 0, so log() is safe.
  double uniform() { return (static_cast<double>(bits()) + 0.5) * 0x1p-32; }

  // Standard normal by Marsaglia's polar method: a point uniform in the unit disc (rejection,
  // 21.5% of tries) gives two independent normals with one log and no trigonometry, about twice
  // as fast as Box–Muller. 32-bit coordinates truncate the tails near 6.7 sigma, a probability of
  // ~1e-10 per draw: far below anything the suite measures.
  double normal() {
    if (has_spare_normal_) {
      has_spare_normal_ = false;
      return spare_normal_;
    }
    double u, v, radius_squared;
    do {
      u = 2.0 * uniform() - 1.0;
      v = 2.0 * uniform() - 1.0;
      radius_squared = u * u + v * v;
    } while (radius_squared >= 1.0);
    const double factor = std::sqrt(-2.0 * std::log(radius_squared) / radius_squared);
    spare_normal_ = v * factor;
    has_spare_normal_ = true;
    return u * factor;
  }

  // Uniform integer in [0, bound), bound >= 1; Lemire's multiply-shift (bias < bound / 2^64).
  std::uint32_t below(std::uint32_t bound) {
    const std::uint64_t high = bits();  // two statements: operand order is unspecified
    const std::uint64_t wide = (high << 32) | bits();
    __extension__ using Wide = unsigned __int128;
    return static_cast<std::uint32_t>((static_cast<Wide>(wide) * bound) >> 64);
  }

 private:
  void refill() {
    const auto out = r123::Philox4x32()(counter_, key_);
    for (int i = 0; i < 4; ++i) block_[i] = out.v[i];
    counter_.v[2] += 1;  // the draw index
    next_word_ = 0;
  }

  r123::Philox4x32::key_type key_;
  r123::Philox4x32::ctr_type counter_;
  std::array<std::uint32_t, 4> block_{};
  int next_word_ = 4;
  bool has_spare_normal_ = false;
  double spare_normal_ = 0.0;
};

}  // namespace iclbench::util

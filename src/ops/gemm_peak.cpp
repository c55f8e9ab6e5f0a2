#include "ops/gemm_peak.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "util/cpu_time.hpp"

namespace iclbench::ops {

double gemm_peak_gflops(DType dtype) {
  static double peak[2] = {0, 0};
  double& cached = peak[dtype == DType::kBF16 ? 1 : 0];
  if (cached > 0) return cached;
  // 1024 x 1024 x 1024: large enough to reach the kernel's steady state, small enough to time
  // in a fraction of a second.
  constexpr std::int64_t kSize = 1024;
  std::vector<float> weights(kSize * kSize, 0.01f), bias(kSize, 0.0f), dst(kSize * kSize);
  std::vector<std::uint16_t> src_bf16(kSize * kSize, 0x3c00);
  std::vector<float> src_f32(kSize * kSize, 0.5f);
  const Linear gemm(Layout::rows(kSize, kSize, kSize, dtype), weights, bias,
                    Layout::rows(kSize, kSize, kSize, DType::kF32), PostActivation::kNone, false);
  std::vector<std::byte> scratch(gemm.scratchpad_bytes() + 64);
  const void* src =
      dtype == DType::kBF16 ? static_cast<const void*>(src_bf16.data()) : src_f32.data();
  std::vector<double> seconds;
  for (int run = 0; run < 6; ++run) {
    // CPU time: on a loaded host a descheduled slice would lower the peak (util/cpu_time.hpp).
    const double start = util::thread_cpu_seconds();
    gemm.execute(src, dst.data(), scratch.data());
    const double elapsed = util::thread_cpu_seconds() - start;
    if (run > 0) seconds.push_back(elapsed);
  }
  std::sort(seconds.begin(), seconds.end());
  cached = 2.0 * kSize * kSize * kSize / seconds[seconds.size() / 2] / 1e9;
  return cached;
}

}  // namespace iclbench::ops

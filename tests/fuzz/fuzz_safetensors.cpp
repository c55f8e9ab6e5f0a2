// libFuzzer target: any bytes as a safetensors file, then as a data set and as a model file.
// Must never crash, read out of bounds or hang; bad input may only throw the documented errors.

#include <cstddef>
#include <cstdint>
#include <span>

#include "data_gen/dataset.hpp"
#include "io/safetensors.hpp"
#include "model/weights.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace iclbench;
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    io::SafetensorsReader reader("fuzz", bytes);
    double sum = 0;
    for (const io::TensorInfo& tensor : reader.tensors()) {
      if (tensor.dtype == io::DType::kF32) {
        for (float value : reader.f32(tensor)) sum += value;
      }
    }
    (void)sum;
    try {
      (void)model::load_model(reader);
    } catch (const io::FormatError&) {
    } catch (const model::ConfigError&) {
    }
    (void)data::Dataset::from_reader(std::move(reader));
  } catch (const io::FormatError&) {
  }
  return 0;
}

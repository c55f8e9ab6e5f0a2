#pragma once
// safetensors files: an 8-byte little-endian header length, a JSON header, then raw little-endian
// tensor data (https://github.com/huggingface/safetensors). Python's `safetensors` and plain NumPy
// read what SafetensorsWriter writes; SafetensorsReader accepts only files that satisfy every rule
// of the format and reports the first violation with the file name and a byte offset.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "io/atomic_file.hpp"

namespace iclbench::io {

enum class DType {
  kBool, kU8, kI8, kF8E4M3, kF8E5M2, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kF64, kI64, kU64,
};
std::string_view dtype_name(DType dtype);
std::size_t dtype_size(DType dtype);
std::optional<DType> parse_dtype(std::string_view name);

// "<file>: byte <offset>: <what>" — the first rule of the format, or of a file kind built on it,
// that the file breaks.
class FormatError : public std::runtime_error {
 public:
  FormatError(const std::string& file, std::uint64_t byte_offset, const std::string& what);
  std::uint64_t byte_offset() const { return byte_offset_; }

 private:
  std::uint64_t byte_offset_;
};

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin;  // absolute byte offsets in the file, [begin, end)
  std::uint64_t end;
  std::int64_t numel() const;
  std::string shape_string() const;  // "[2, 3]"
};

// Hard limits of the format (the reference implementation's, so that files we accept it accepts).
inline constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

class SafetensorsReader {
 public:
  // Reads the header, validates it (the file's size must be exactly what it describes), then reads
  // the body into memory (a copy: a mapping would die with SIGBUS if another process truncated the
  // file). So a file padded with a hole or garbage costs no memory before it is refused. Throws FormatError (bad content) or IoError, also when
  // the file shrinks while it is read.
  explicit SafetensorsReader(const std::filesystem::path& path);
  // Validates an in-memory image (tests and fuzzers); `bytes` must outlive the reader.
  SafetensorsReader(std::string display_name, std::span<const std::byte> bytes);
  ~SafetensorsReader();
  SafetensorsReader(SafetensorsReader&&) noexcept;
  SafetensorsReader& operator=(SafetensorsReader&&) noexcept;

  const std::string& name() const { return name_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in file order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorInfo* find(std::string_view tensor_name) const;

  // The tensor's raw bytes.
  std::span<const std::byte> bytes(const TensorInfo& tensor) const;
  // The tensor as f32 values; throws FormatError if its dtype is not F32. Zero-copy when the data
  // is 4-byte aligned in the file (always for files we write), a private copy otherwise.
  std::span<const float> f32(const TensorInfo& tensor) const;

  // The __metadata__ entry `key`; throws FormatError (at the header) saying what kind of file
  // was expected and `how_to_make` one, if it is missing.
  const std::string& required_metadata(const std::string& key, const std::string& kind,
                                       const std::string& how_to_make) const;

  // Builds a FormatError that points at a tensor's data (for checks of files built on the format).
  FormatError error_at(const TensorInfo& tensor, const std::string& what) const;
  FormatError error_at(std::uint64_t byte_offset, const std::string& what) const;

 private:
  // Bytes [begin, end) of the file (of `size` bytes when opened) into buffer_; IoError if the file
  // shrinks.
  void read_range(int fd, std::size_t begin, std::size_t end, std::size_t size);
  void parse();

  std::string name_;
  std::span<const std::byte> image_;
  // The file's bytes in anonymous pages (page-aligned, so f32() is zero-copy for every tensor the
  // format aligns); unmapped by the destructor. Null for in-memory images.
  std::byte* buffer_ = nullptr;
  std::size_t buffer_size_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
  mutable std::map<std::string, std::vector<float>> unaligned_copies_;
};

struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
};

// Lays out the header first, so that tensors can then be filled in any order and in pieces
// (several threads may write disjoint pieces at once); nothing is visible until commit().
class SafetensorsWriter {
 public:
  SafetensorsWriter(const std::filesystem::path& path,
                    const std::map<std::string, std::string>& metadata,
                    const std::vector<TensorToWrite>& tensors, Overwrite overwrite);

  std::uint64_t file_size() const { return file_size_; }
  // Writes `bytes` at `byte_offset` within the named tensor's data.
  void write(std::string_view tensor_name, std::uint64_t byte_offset,
             std::span<const std::byte> bytes);
  void write_f32(std::string_view tensor_name, std::uint64_t element_offset,
                 std::span<const float> values);
  void commit() { file_.commit(); }
  AtomicFile& file() { return file_; }  // for io::commit_together()

 private:
  struct Slot {
    std::string name;
    std::uint64_t begin;
    std::uint64_t size;
    DType dtype;
  };
  const Slot& slot(std::string_view tensor_name) const;

  AtomicFile file_;
  std::vector<Slot> slots_;
  std::uint64_t file_size_ = 0;
};

}  // namespace iclbench::io

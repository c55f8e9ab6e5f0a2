#include "io/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "io/input_file.hpp"
#include "util/text.hpp"

namespace iclbench::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host would need byte swaps");

namespace {

struct DTypeEntry {
  DType dtype;
  std::string_view name;
  std::size_t size;
};
constexpr std::array<DTypeEntry, 15> kDTypes = {{
    {DType::kBool, "BOOL", 1},     {DType::kU8, "U8", 1},   {DType::kI8, "I8", 1},
    {DType::kF8E4M3, "F8_E4M3", 1}, {DType::kF8E5M2, "F8_E5M2", 1},
    {DType::kI16, "I16", 2},       {DType::kU16, "U16", 2}, {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2},     {DType::kI32, "I32", 4}, {DType::kU32, "U32", 4},
    {DType::kF32, "F32", 4},       {DType::kF64, "F64", 8}, {DType::kI64, "I64", 8},
    {DType::kU64, "U64", 8},
}};

constexpr std::uint64_t kHeaderLengthBytes = 8;
constexpr int kMaxJsonDepth = 4;  // {tensor: {shape: [..]}} is depth 3
constexpr std::size_t kMaxRank = 16;

std::uint64_t read_le_u64(const std::byte* bytes) {
  std::uint64_t value;
  std::memcpy(&value, bytes, sizeof value);
  return value;
}

}  // namespace

std::string_view dtype_name(DType dtype) {
  for (const auto& entry : kDTypes)
    if (entry.dtype == dtype) return entry.name;
  return "?";
}

std::size_t dtype_size(DType dtype) {
  for (const auto& entry : kDTypes)
    if (entry.dtype == dtype) return entry.size;
  return 0;
}

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& entry : kDTypes)
    if (entry.name == name) return entry.dtype;
  return std::nullopt;
}

FormatError::FormatError(const std::string& file, std::uint64_t byte_offset,
                         const std::string& what)
    : std::runtime_error(util::escape_control(file + ": byte " + std::to_string(byte_offset) + ": " + what)),
      byte_offset_(byte_offset) {}

std::int64_t TensorInfo::numel() const {
  std::int64_t count = 1;
  for (std::int64_t extent : shape) count *= extent;
  return count;
}

std::string TensorInfo::shape_string() const {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(shape[i]);
  }
  return text + "]";
}

SafetensorsReader::SafetensorsReader(const std::filesystem::path& path) : name_(path.string()) {
  // The file is read into memory, not mapped: a mapped file that another process truncates kills
  // this one with SIGBUS at the next access to a page past the new end (an `eval` over a data set
  // being truncated did). Reading costs a copy from the page cache and the faults of fresh
  // memory: on a 265 MB task set 0.7 s of CPU against 0.1 s for the mapping, with the buffer in
  // transparent huge pages (1.9 s in 4 KB pages; README "Task set files" has the measurement).
  const int fd = open_regular_file(path);  // a FIFO is refused, not waited on
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int err = errno;
    ::close(fd);
    throw IoError("cannot read " + name_ + ": " + std::strerror(err));
  }
  const auto size = static_cast<std::size_t>(info.st_size);
  if (size > 0) {
    void* memory = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
      ::close(fd);
      throw IoError("cannot read " + name_ + ": no memory for its " + std::to_string(size) + " bytes");
    }
    ::madvise(memory, size, MADV_HUGEPAGE);  // a hint: 512 times fewer page faults where granted
    buffer_ = static_cast<std::byte*>(memory);
    buffer_size_ = size;
  }
  // The header first, and the body only once the header has been validated, which includes that
  // the file's size is exactly what the header describes (no byte past the last tensor): a file
  // made large by a hole or a garbage tail is refused before its body is read into memory (a
  // sparse 1 GB file once took 1 GB of RSS only to be refused). The buffer's pages are untouched,
  // so cost no memory, until read. A constructor that throws runs no destructor: the buffer is
  // unmapped here then.
  try {
    const std::size_t length_end = std::min<std::size_t>(size, kHeaderLengthBytes);
    read_range(fd, 0, length_end, size);
    std::size_t header_end = length_end;
    if (size >= kHeaderLengthBytes) {
      const std::uint64_t header_size = read_le_u64(buffer_);
      // An impossible length is refused by parse() from the 8 bytes alone.
      if (header_size <= kMaxHeaderBytes && header_size <= size - kHeaderLengthBytes) {
        header_end = kHeaderLengthBytes + static_cast<std::size_t>(header_size);
      }
    }
    read_range(fd, length_end, header_end, size);
    image_ = std::span<const std::byte>(buffer_, size);
    parse();  // reads only the header's bytes
    read_range(fd, header_end, size, size);
  } catch (...) {
    ::close(fd);
    if (buffer_ != nullptr) ::munmap(buffer_, buffer_size_);
    buffer_ = nullptr;
    throw;
  }
  ::close(fd);
}

void SafetensorsReader::read_range(int fd, std::size_t begin, std::size_t end, std::size_t size) {
  {
    std::size_t done = begin;
    while (done < end) {
      const ssize_t got = ::pread(fd, buffer_ + done, end - done, static_cast<off_t>(done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        const int err = errno;
        throw IoError("cannot read " + name_ + ": " +
                      (got == 0 ? "the file shrank from " + std::to_string(size) + " to " +
                                      std::to_string(done) +
                                      " bytes while being read (another process is writing it?)"
                                : std::string(std::strerror(err))));
      }
      done += static_cast<std::size_t>(got);
    }
  }
}

SafetensorsReader::SafetensorsReader(std::string display_name, std::span<const std::byte> bytes)
    : name_(std::move(display_name)), image_(bytes) {
  parse();
}

SafetensorsReader::~SafetensorsReader() {
  if (buffer_ != nullptr) ::munmap(buffer_, buffer_size_);
}

SafetensorsReader::SafetensorsReader(SafetensorsReader&& other) noexcept
    : name_(std::move(other.name_)),
      image_(std::exchange(other.image_, {})),
      buffer_(std::exchange(other.buffer_, nullptr)),
      buffer_size_(std::exchange(other.buffer_size_, 0)),
      tensors_(std::move(other.tensors_)),
      metadata_(std::move(other.metadata_)),
      unaligned_copies_(std::move(other.unaligned_copies_)) {}

SafetensorsReader& SafetensorsReader::operator=(SafetensorsReader&& other) noexcept {
  if (this != &other) {
    if (buffer_ != nullptr) ::munmap(buffer_, buffer_size_);
    name_ = std::move(other.name_);
    image_ = std::exchange(other.image_, {});
    buffer_ = std::exchange(other.buffer_, nullptr);
    buffer_size_ = std::exchange(other.buffer_size_, 0);
    tensors_ = std::move(other.tensors_);
    metadata_ = std::move(other.metadata_);
    unaligned_copies_ = std::move(other.unaligned_copies_);
  }
  return *this;
}

FormatError SafetensorsReader::error_at(std::uint64_t byte_offset, const std::string& what) const {
  return FormatError(name_, byte_offset, what);
}

FormatError SafetensorsReader::error_at(const TensorInfo& tensor, const std::string& what) const {
  return FormatError(name_, tensor.begin, "tensor '" + tensor.name + "': " + what);
}

void SafetensorsReader::parse() {
  const std::uint64_t file_size = image_.size();
  if (file_size < kHeaderLengthBytes) {
    throw error_at(0, "file is " + std::to_string(file_size) +
                          " bytes, too short for the 8-byte header length (truncated?)");
  }
  const std::uint64_t header_size = read_le_u64(image_.data());
  if (header_size > kMaxHeaderBytes) {
    throw error_at(0, "header length " + std::to_string(header_size) + " exceeds the limit of " +
                          std::to_string(kMaxHeaderBytes) + " bytes (not a safetensors file?)");
  }
  if (header_size > file_size - kHeaderLengthBytes) {
    throw error_at(0, "header length " + std::to_string(header_size) +
                          " runs past the end of the file (file is " + std::to_string(file_size) +
                          " bytes; truncated?)");
  }
  const std::string_view header(reinterpret_cast<const char*>(image_.data()) + kHeaderLengthBytes,
                                header_size);
  if (header.empty() || header.front() != '{') {
    throw error_at(kHeaderLengthBytes, "header does not start with '{'");
  }
  const std::uint64_t data_start = kHeaderLengthBytes + header_size;
  const std::uint64_t data_size = file_size - data_start;

  // Where a key first appears in the header, for error messages that point into the JSON.
  auto key_offset = [&](const std::string& key) -> std::uint64_t {
    const std::size_t at = header.find(nlohmann::json(key).dump());
    return kHeaderLengthBytes + (at == std::string_view::npos ? 0 : at);
  };

  nlohmann::json root;
  // The keys of every open object: a key repeated at any depth (a second "config" inside
  // __metadata__, a second "dtype" in a tensor entry) is refused, not "last one wins".
  std::vector<std::vector<std::string>> open_objects;
  // nlohmann calls the callback from noexcept code for some events, so it must not throw:
  // it records the first problem and discards what it cannot accept (found by fuzzing).
  std::optional<std::string> shape_error;
  try {
    root = nlohmann::json::parse(
        header.begin(), header.end(),
        [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) noexcept {
          if (depth > kMaxJsonDepth) {
            if (!shape_error) shape_error = "header JSON is nested too deeply";
            return false;
          }
          if (event == nlohmann::json::parse_event_t::object_start) open_objects.emplace_back();
          if (event == nlohmann::json::parse_event_t::object_end && !open_objects.empty()) open_objects.pop_back();
          if (event == nlohmann::json::parse_event_t::key && !open_objects.empty() && parsed.is_string()) {
            std::vector<std::string>& keys = open_objects.back();
            const std::string& key = parsed.get_ref<const std::string&>();
            if (std::find(keys.begin(), keys.end(), key) != keys.end()) {
              if (!shape_error) shape_error = "duplicate entry '" + key + "' in the header";
            } else {
              keys.push_back(key);
            }
          }
          return true;
        });
  } catch (const nlohmann::json::parse_error& error) {
    const std::uint64_t at = error.byte > 0 ? error.byte - 1 : 0;
    std::string message = error.what();
    if (auto pos = message.find("] "); pos != std::string::npos) message.erase(0, pos + 2);
    throw error_at(kHeaderLengthBytes + at, "header is not valid JSON: " + message);
  } catch (const nlohmann::json::exception& error) {
    // e.g. out_of_range for a number like 1e873275 (found by fuzzing)
    std::string message = error.what();
    if (auto pos = message.find("] "); pos != std::string::npos) message.erase(0, pos + 2);
    throw error_at(kHeaderLengthBytes, "header is not valid JSON: " + message);
  }
  if (shape_error) throw error_at(kHeaderLengthBytes, *shape_error);
  if (!root.is_object()) throw error_at(kHeaderLengthBytes, "header is not a JSON object");
  // The format pads the header JSON with spaces (0x20) only. nlohmann's parser stops at a NUL
  // byte as at the end of its input, so "{...}\0garbage" would otherwise pass.
  if (const std::size_t nul = header.find('\0'); nul != std::string_view::npos) {
    throw error_at(kHeaderLengthBytes + nul, "header holds a NUL byte (its JSON may only be padded with spaces)");
  }
  if (const std::size_t last = header.find_last_not_of(' '); header[last] != '}') {
    throw error_at(kHeaderLengthBytes + last,
                   "header JSON must end with '}' and be padded with spaces only");
  }

  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) {
        throw error_at(key_offset(key), "__metadata__ must be an object of strings");
      }
      for (const auto& [meta_key, meta_value] : value.items()) {
        if (!meta_value.is_string()) {
          throw error_at(key_offset(meta_key),
                         "__metadata__ entry '" + meta_key + "' is not a string");
        }
        metadata_[meta_key] = meta_value.get<std::string>();
      }
      continue;
    }
    const std::uint64_t at = key_offset(key);
    const std::string where = "tensor '" + key + "': ";
    if (!value.is_object()) throw error_at(at, where + "entry is not an object");
    for (const auto& [field, ignored] : value.items()) {
      if (field != "dtype" && field != "shape" && field != "data_offsets") {
        throw error_at(at, where + "unknown field '" + field + "'");
      }
    }
    if (!value.contains("dtype") || !value["dtype"].is_string()) {
      throw error_at(at, where + "missing or non-string 'dtype'");
    }
    const auto dtype = parse_dtype(value["dtype"].get<std::string>());
    if (!dtype) {
      throw error_at(at, where + "unknown dtype '" + value["dtype"].get<std::string>() + "'");
    }
    if (!value.contains("shape") || !value["shape"].is_array()) {
      throw error_at(at, where + "missing or non-array 'shape'");
    }
    if (value["shape"].size() > kMaxRank) {
      throw error_at(at, where + "rank " + std::to_string(value["shape"].size()) +
                             " exceeds the limit of " + std::to_string(kMaxRank));
    }
    TensorInfo tensor{key, *dtype, {}, 0, 0};
    std::uint64_t byte_count = dtype_size(*dtype);
    for (const auto& extent : value["shape"]) {
      if (!extent.is_number_unsigned()) {
        throw error_at(at, where + "shape entries must be non-negative integers, got " +
                               extent.dump());
      }
      const auto extent_value = extent.get<std::uint64_t>();
      if (extent_value > static_cast<std::uint64_t>(INT64_MAX) ||
          __builtin_mul_overflow(byte_count, extent_value, &byte_count)) {
        throw error_at(at, where + "shape " + value["shape"].dump() + " is too large");
      }
      tensor.shape.push_back(static_cast<std::int64_t>(extent_value));
    }
    const auto& offsets = value.contains("data_offsets") ? value["data_offsets"] : nlohmann::json();
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
      throw error_at(at, where + "'data_offsets' must be two non-negative integers");
    }
    const auto begin = offsets[0].get<std::uint64_t>();
    const auto end = offsets[1].get<std::uint64_t>();
    if (begin > end) {
      throw error_at(at, where + "data_offsets [" + std::to_string(begin) + ", " +
                             std::to_string(end) + "] end before they begin");
    }
    if (end > data_size) {
      throw error_at(at, where + "data_offsets [" + std::to_string(begin) + ", " +
                             std::to_string(end) + "] run past the end of the file (the data " +
                             "section holds " + std::to_string(data_size) + " bytes; truncated?)");
    }
    if (end - begin != byte_count) {
      throw error_at(at, where + "shape " + tensor.shape_string() + " of " +
                             std::string(dtype_name(*dtype)) + " needs " +
                             std::to_string(byte_count) + " bytes but data_offsets span " +
                             std::to_string(end - begin));
    }
    tensor.begin = data_start + begin;
    tensor.end = data_start + end;
    tensors_.push_back(std::move(tensor));
  }

  // The format requires the tensors to tile the data section exactly: no overlap, no hole, no
  // trailing bytes.
  std::sort(tensors_.begin(), tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  std::uint64_t covered = data_start;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& tensor : tensors_) {
    if (tensor.begin < covered) {
      throw error_at(tensor.begin, "tensors '" + previous->name + "' and '" + tensor.name +
                                       "' overlap");
    }
    if (tensor.begin > covered) {
      throw error_at(covered, std::to_string(tensor.begin - covered) +
                                  " bytes before tensor '" + tensor.name +
                                  "' belong to no tensor");
    }
    covered = tensor.end;
    previous = &tensor;
  }
  if (covered != file_size) {
    throw error_at(covered, std::to_string(file_size - covered) +
                                " bytes after the last tensor belong to no tensor");
  }
}

const std::string& SafetensorsReader::required_metadata(const std::string& key,
                                                       const std::string& kind,
                                                       const std::string& how_to_make) const {
  const auto found = metadata_.find(key);
  if (found == metadata_.end()) {
    throw error_at(kHeaderLengthBytes, "not an " + kind + ": __metadata__ has no '" + key +
                                           "' (" + how_to_make + ")");
  }
  return found->second;
}

const TensorInfo* SafetensorsReader::find(std::string_view tensor_name) const {
  for (const TensorInfo& tensor : tensors_)
    if (tensor.name == tensor_name) return &tensor;
  return nullptr;
}

std::span<const std::byte> SafetensorsReader::bytes(const TensorInfo& tensor) const {
  return image_.subspan(tensor.begin, tensor.end - tensor.begin);
}

std::span<const float> SafetensorsReader::f32(const TensorInfo& tensor) const {
  if (tensor.dtype != DType::kF32) {
    throw error_at(tensor, "dtype is " + std::string(dtype_name(tensor.dtype)) + ", expected F32");
  }
  const std::span<const std::byte> raw = bytes(tensor);
  const auto count = raw.size() / sizeof(float);
  if (reinterpret_cast<std::uintptr_t>(raw.data()) % alignof(float) == 0) {
    return {reinterpret_cast<const float*>(raw.data()), count};
  }
  auto& copy = unaligned_copies_[tensor.name];
  if (copy.size() != count) {
    copy.resize(count);
    std::memcpy(copy.data(), raw.data(), raw.size());
  }
  return copy;
}

SafetensorsWriter::SafetensorsWriter(const std::filesystem::path& path,
                                     const std::map<std::string, std::string>& metadata,
                                     const std::vector<TensorToWrite>& tensors,
                                     Overwrite overwrite)
    : file_(path, overwrite) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const TensorToWrite& tensor : tensors) {
    std::uint64_t size = dtype_size(tensor.dtype);
    for (std::int64_t extent : tensor.shape) size *= static_cast<std::uint64_t>(extent);
    header[tensor.name] = {{"dtype", dtype_name(tensor.dtype)},
                           {"shape", tensor.shape},
                           {"data_offsets", {offset, offset + size}}};
    slots_.push_back({tensor.name, offset, size, tensor.dtype});
    offset += size;
  }
  std::string header_text = header.dump();
  // Pad with spaces (valid JSON whitespace) so that tensor data starts 8-byte aligned, as the
  // reference implementation does; readers can then view it in place.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  const std::uint64_t data_start = kHeaderLengthBytes + header_text.size();
  for (Slot& slot : slots_) slot.begin += data_start;
  file_size_ = data_start + offset;

  file_.reserve(file_size_);
  std::array<std::byte, kHeaderLengthBytes> length{};
  const std::uint64_t header_length = header_text.size();
  std::memcpy(length.data(), &header_length, sizeof header_length);
  file_.write_at(0, length);
  file_.write_at(kHeaderLengthBytes, header_text);
}

const SafetensorsWriter::Slot& SafetensorsWriter::slot(std::string_view tensor_name) const {
  for (const Slot& slot : slots_)
    if (slot.name == tensor_name) return slot;
  throw std::logic_error("SafetensorsWriter: no tensor named " + std::string(tensor_name));
}

void SafetensorsWriter::write(std::string_view tensor_name, std::uint64_t byte_offset,
                              std::span<const std::byte> bytes) {
  const Slot& target = slot(tensor_name);
  if (byte_offset + bytes.size() > target.size) {
    throw std::logic_error("SafetensorsWriter: write past the end of tensor " +
                           std::string(tensor_name));
  }
  file_.write_at(target.begin + byte_offset, bytes);
}

void SafetensorsWriter::write_f32(std::string_view tensor_name, std::uint64_t element_offset,
                                  std::span<const float> values) {
  if (slot(tensor_name).dtype != DType::kF32) {
    throw std::logic_error("SafetensorsWriter: tensor " + std::string(tensor_name) +
                           " is not F32");
  }
  write(tensor_name, element_offset * sizeof(float), std::as_bytes(values));
}

}  // namespace iclbench::io

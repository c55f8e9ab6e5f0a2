// safetensors reader/writer and atomic files.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io/atomic_file.hpp"
#include "io/safetensors.hpp"

namespace iclbench::io {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(ICLBENCH_TEST_TMPDIR) / ("io_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// An 8-byte little-endian length, the header text, then the data bytes.
std::string image(const std::string& header, const std::string& data = "",
                  std::uint64_t header_length = UINT64_MAX) {
  const std::uint64_t length = header_length == UINT64_MAX ? header.size() : header_length;
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &length, 8);
  return bytes + header + data;
}

std::span<const std::byte> as_span(const std::string& bytes) {
  return std::as_bytes(std::span(bytes.data(), bytes.size()));
}

// Expects the image to be rejected with a message containing `expected` and pointing at byte
// `offset`.
void expect_rejected(const std::string& bytes, const std::string& expected, std::uint64_t offset) {
  try {
    SafetensorsReader reader("bad.safetensors", as_span(bytes));
    ADD_FAILURE() << "accepted a malformed file; expected: " << expected;
  } catch (const FormatError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(expected), std::string::npos) << message;
    EXPECT_EQ(message.rfind("bad.safetensors: byte ", 0), 0u) << message;
    EXPECT_EQ(error.byte_offset(), offset) << message;
  }
}

const std::string kFloat2 = std::string(8, '\0');  // two F32 zeros

TEST(Safetensors, RoundTripKeepsValuesShapesAndMetadata) {
  const fs::path path = fresh_dir("roundtrip") / "t.safetensors";
  const std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 1e-30f, -7.0f};
  const std::vector<std::int64_t> b = {-1, 0, 1LL << 40};
  {
    SafetensorsWriter writer(path, {{"k", "v"}, {"json", "{\"a\":1}"}},
                             {{"a", DType::kF32, {2, 3}},
                              {"empty", DType::kF32, {0, 4}},
                              {"b", DType::kI64, {3}},
                              {"odd", DType::kU8, {3}}},
                             Overwrite::kRefuse);
    writer.write_f32("a", 3, std::span(a).subspan(3));  // pieces, out of order
    writer.write_f32("a", 0, std::span(a).first(3));
    writer.write("b", 0, std::as_bytes(std::span(b)));
    const std::byte odd[3] = {std::byte{1}, std::byte{2}, std::byte{3}};
    writer.write("odd", 0, odd);
    writer.commit();
  }
  const SafetensorsReader reader(path);
  EXPECT_EQ(reader.metadata().at("k"), "v");
  EXPECT_EQ(reader.metadata().at("json"), "{\"a\":1}");
  ASSERT_EQ(reader.tensors().size(), 4u);
  const TensorInfo* info = reader.find("a");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->shape, (std::vector<std::int64_t>{2, 3}));
  const auto values = reader.f32(*info);
  ASSERT_EQ(values.size(), a.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(values[i], a[i]) << i;
  // Tensor data starts 8-byte aligned, as in the reference implementation.
  std::uint64_t header_length;
  const std::string raw = read_all(path);
  std::memcpy(&header_length, raw.data(), 8);
  EXPECT_EQ(header_length % 8, 0u);
  const TensorInfo* b_info = reader.find("b");
  std::vector<std::int64_t> b_read(3);
  std::memcpy(b_read.data(), reader.bytes(*b_info).data(), 24);
  EXPECT_EQ(b_read, b);
  EXPECT_EQ(reader.find("empty")->numel(), 0);
  EXPECT_THROW(reader.f32(*b_info), FormatError);  // not F32
}

TEST(Safetensors, AcceptsAMinimalHandWrittenFile) {
  const std::string bytes =
      image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}  )", kFloat2);
  SafetensorsReader reader("ok", as_span(bytes));
  EXPECT_EQ(reader.f32(*reader.find("a")).size(), 2u);
}

TEST(Safetensors, RejectsMalformedFilesWithTheFirstViolation) {
  const std::string ok_entry = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  // 1-2: too short for the length prefix.
  expect_rejected("", "too short for the 8-byte header length", 0);
  expect_rejected(std::string(5, '\0'), "too short for the 8-byte header length", 0);
  // 3: header length past the end of the file.
  expect_rejected(image("{}", "", 100), "runs past the end of the file", 0);
  // 4: absurd header length (a random binary file).
  expect_rejected(image("{}", "", 1ULL << 62), "exceeds the limit", 0);
  // 5: header is not a JSON object.
  expect_rejected(image("[1,2]"), "does not start with '{'", 8);
  // 6: truncated JSON; the offset points where the input ended (13 header bytes).
  expect_rejected(image(R"({"a":{"dtype")"), "header is not valid JSON", 8 + 13);
  // 7: invalid UTF-8 in a key.
  expect_rejected(image("{\"\xff\":1}"), "header is not valid JSON", 8 + 2);
  // 8: unknown dtype.
  expect_rejected(image(R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", kFloat2),
                  "unknown dtype 'F33'", 9);
  // 9: dtype not a string.
  expect_rejected(image(R"({"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", kFloat2),
                  "missing or non-string 'dtype'", 9);
  // 10: negative extent.
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", kFloat2),
                  "shape entries must be non-negative integers", 9);
  // 11: fractional extent.
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", kFloat2),
                  "shape entries must be non-negative integers", 9);
  // 12: shape x dtype size != byte span.
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", kFloat2),
                  "needs 12 bytes but data_offsets span 8", 9);
  // 13: offsets that end before they begin.
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", kFloat2),
                  "end before they begin", 9);
  // 14: offsets past the end of the file (a truncated data section).
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", kFloat2),
                  "run past the end of the file", 9);
  // 15-17: the tensors must tile the data section (which starts at 8 + header length).
  const std::string overlap = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  expect_rejected(image(overlap, kFloat2), "tensors 'a' and 'b' overlap", 8 + overlap.size() + 4);
  const std::string hole = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  expect_rejected(image(hole, kFloat2), "4 bytes before tensor 'a' belong to no tensor",
                  8 + hole.size());
  const std::string trailing = "{" + ok_entry + "}";
  expect_rejected(image(trailing, kFloat2 + "xyz"),
                  "3 bytes after the last tensor belong to no tensor", 8 + trailing.size() + 8);
  // 18: duplicate tensor names.
  expect_rejected(image("{" + ok_entry + "," + ok_entry + "}", kFloat2),
                  "duplicate entry 'a' in the header", 8);
  // 19: metadata value that is not a string.
  expect_rejected(image(R"({"__metadata__":{"seed":3},)" + ok_entry + "}", kFloat2),
                  "__metadata__ entry 'seed' is not a string", 8 + 17);
  // 20: unknown field in a tensor entry.
  expect_rejected(
      image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"stride":[1]}})", kFloat2),
      "unknown field 'stride'", 9);
  // 21: extents whose product overflows 64 bits.
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],)"
                        R"("data_offsets":[0,8]}})",
                        kFloat2),
                  "is too large", 9);
  // 22: JSON nested deeper than any valid header.
  expect_rejected(image(R"({"a":{"b":{"c":{"d":{"e":1}}}}})"), "nested too deeply", 8);
  // 23-24: malformed data_offsets.
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}})", kFloat2),
                  "'data_offsets' must be two non-negative integers", 9);
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[2]}})", kFloat2),
                  "'data_offsets' must be two non-negative integers", 9);
  // 25: a number no double can hold (found by fuzzing: it escaped as an internal error).
  expect_rejected(image(R"({"__metadata__":{"a":"b"},"x":1e873275})"), "number overflow", 8);
  // 26: a tensor entry that is not an object.
  expect_rejected(image(R"({"a":[1,2]})"), "entry is not an object", 9);
  // 27: the header JSON followed by a NUL byte and garbage (nlohmann stops at the NUL);
  // 28-29 (siblings): padding with a newline or a tab, where the format allows spaces only.
  const std::string entry = "{" + ok_entry + "}";
  expect_rejected(image(entry + std::string(1, '\0') + "garbage", kFloat2), "header holds a NUL byte",
                  8 + entry.size());
  expect_rejected(image(entry + "   \n", kFloat2), "padded with spaces only", 8 + entry.size() + 3);
  expect_rejected(image(entry + "\t  ", kFloat2), "padded with spaces only", 8 + entry.size());
  // 30-31: a key repeated below the top level (nlohmann keeps the last): in __metadata__ (a
  // second "config" would replace the model's) and in a tensor entry.
  expect_rejected(image(R"({"__metadata__":{"config":"a","config":"b"},)" + ok_entry + "}", kFloat2),
                  "duplicate entry 'config' in the header", 8);
  expect_rejected(image(R"({"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})", kFloat2),
                  "duplicate entry 'dtype' in the header", 8);
}

TEST(Safetensors, TruncatedRealFileIsRejectedAtEveryLength) {
  const fs::path dir = fresh_dir("truncated");
  const fs::path path = dir / "t.safetensors";
  {
    SafetensorsWriter writer(path, {{"k", "v"}}, {{"a", DType::kF32, {5}}}, Overwrite::kRefuse);
    const std::vector<float> values(5, 1.0f);
    writer.write_f32("a", 0, values);
    writer.commit();
  }
  const std::string whole = read_all(path);
  for (std::size_t length = 0; length < whole.size(); ++length) {
    const std::string cut = whole.substr(0, length);
    EXPECT_THROW(SafetensorsReader("cut", as_span(cut)), FormatError) << "length " << length;
  }
  std::ofstream(dir / "cut.safetensors", std::ios::binary) << whole.substr(0, whole.size() - 1);
  EXPECT_THROW(SafetensorsReader(dir / "cut.safetensors"), FormatError);
}

TEST(Safetensors, MissingFileAndDirectoryAreIoErrors) {
  const fs::path dir = fresh_dir("missing");
  EXPECT_THROW(SafetensorsReader(dir / "nope.safetensors"), IoError);
  EXPECT_THROW(SafetensorsReader{dir}, IoError);
}

TEST(AtomicFile, NothingAppearsUntilCommit) {
  const fs::path dir = fresh_dir("atomic");
  const fs::path path = dir / "out.bin";
  {
    AtomicFile file(path, Overwrite::kRefuse);
    file.write_at(0, std::string_view("hello"));
    EXPECT_FALSE(fs::exists(path));
    EXPECT_TRUE(fs::exists(file.temp_path()));
  }  // destroyed without commit
  EXPECT_FALSE(fs::exists(path));
  EXPECT_TRUE(fs::is_empty(dir)) << "temporary file left behind";

  AtomicFile file(path, Overwrite::kRefuse);
  file.write_at(0, std::string_view("hello"));
  file.commit();
  EXPECT_EQ(read_all(path), "hello");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

TEST(AtomicFile, ExistingFileIsNeverLostWithoutPermission) {
  const fs::path dir = fresh_dir("existing");
  const fs::path path = dir / "out.txt";
  write_file_atomically(path, "first", Overwrite::kRefuse);
  EXPECT_THROW(write_file_atomically(path, "second", Overwrite::kRefuse), IoError);
  EXPECT_EQ(read_all(path), "first");
  {
    AtomicFile replacement(path, Overwrite::kAllow);
    replacement.write_at(0, std::string_view("half-written"));
    // an error before commit: the old file must survive
  }
  EXPECT_EQ(read_all(path), "first");
  write_file_atomically(path, "second", Overwrite::kAllow);
  EXPECT_EQ(read_all(path), "second");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

// commit_together's renames are separate calls. When one fails (here: another writer takes the
// second name after the check, which RENAME_NOREPLACE catches), the first output, already renamed
// into place and new, is taken back: neither appears. A file that the first replaced (--force)
// cannot be brought back and stays replaced.
TEST(AtomicFile, AFailedRenameTakesBackTheNewOutputsAlreadyInPlace) {
  const fs::path dir = fresh_dir("together");
  const fs::path first = dir / "r.json", second = dir / "r.csv";
  for (const Overwrite overwrite : {Overwrite::kRefuse, Overwrite::kAllow}) {
    {
      AtomicFile a(first, overwrite), b(second, Overwrite::kRefuse);
      a.write_at(0, std::string_view("json"));
      b.write_at(0, std::string_view("csv"));
      std::ofstream(second) << "the other writer's";
      EXPECT_THROW(commit_together({&a, &b}), OutputExistsError);
    }
    EXPECT_FALSE(fs::exists(first));
    EXPECT_EQ(read_all(second), "the other writer's");
    EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
    fs::remove(second);
  }
  std::ofstream(first) << "old";
  {
    AtomicFile a(first, Overwrite::kAllow), b(second, Overwrite::kRefuse);
    a.write_at(0, std::string_view("new"));
    std::ofstream(second) << "the other writer's";
    EXPECT_THROW(commit_together({&a, &b}), OutputExistsError);
  }
  EXPECT_EQ(read_all(first), "new");
}

// A SIGINT during the renames (here: raised inside a SignalHold, where commit_together holds it)
// waits until they are done, then ends the process by SIGINT as it would have.
TEST(AtomicFile, AnInterruptDuringTheRenamesWaitsForThem) {
  const fs::path dir = fresh_dir("hold");
  const fs::path out = dir / "out.txt", marker = dir / "after-raise";
  const pid_t pid = ::fork();
  if (pid == 0) {
    install_signal_cleanup();
    AtomicFile file(out, Overwrite::kRefuse);
    file.write_at(0, std::string_view("whole"));
    {
      const SignalHold hold;
      ::raise(SIGINT);
      std::ofstream(marker) << "still running";  // not reached if the signal was not held
      commit_together({&file});
    }
    _exit(0);  // not reached: the held signal ends the process when the hold does
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT) << "status " << status;
  EXPECT_TRUE(fs::exists(marker));
  EXPECT_EQ(read_all(out), "whole");
}

TEST(AtomicFile, UnwritableDirectoryIsReportedAtOnce) {
  EXPECT_THROW(AtomicFile("/nonexistent-dir/x.bin", Overwrite::kRefuse), IoError);
  const fs::path dir = fresh_dir("isdir");
  EXPECT_THROW(AtomicFile(dir, Overwrite::kAllow), IoError);
}

}  // namespace
}  // namespace iclbench::io

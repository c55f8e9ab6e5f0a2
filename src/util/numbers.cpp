#include "util/numbers.hpp"

#include <algorithm>
#include <charconv>

namespace iclbench::util {
namespace {

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

template <typename T>
std::optional<T> parse_decimal(std::string_view text) {
  T value{};
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, 10);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;  // incl. overflow
  return value;
}

}  // namespace

std::optional<std::int64_t> parse_int64(std::string_view text) {
  const std::string_view digits = text.starts_with('-') ? text.substr(1) : text;
  if (!all_digits(digits)) return std::nullopt;
  return parse_decimal<std::int64_t>(text);
}

std::optional<std::uint64_t> parse_uint64(std::string_view text) {
  if (!all_digits(text)) return std::nullopt;
  return parse_decimal<std::uint64_t>(text);
}

std::optional<double> parse_real(std::string_view text) {
  // from_chars in its general format reads decimal digits and the inf/nan words only, never a
  // "0x" prefix, and reports overflow as an error.
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, std::chars_format::general);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace iclbench::util

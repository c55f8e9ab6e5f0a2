#include "util/text.hpp"

#include <cstdio>
#include <cstdlib>

namespace iclbench::util {

std::string format_number(double value, int digits) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*g", digits, value);
  return text;
}

std::string format_number_beside(double value, int digits, std::initializer_list<double> marks) {
  for (; digits < 17; ++digits) {
    const std::string text = format_number(value, digits);
    const double printed = std::strtod(text.c_str(), nullptr);
    bool same_side = true;
    for (const double mark : marks)
      same_side = same_side && (value < mark) == (printed < mark) && (value > mark) == (printed > mark);
    if (same_side) return text;
  }
  return format_number(value, 17);
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB", "PB", "EB"};
  int unit = 0;
  while (bytes >= 1000.0 && unit < 6) {
    bytes /= 1000.0;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, "%.3g %s", bytes, units[unit]);
  return text;
}

namespace {

// The length of the well-formed UTF-8 sequence that starts text[at] (RFC 3629: no overlong form,
// no surrogate, nothing above U+10FFFF), or 0 when none does.
std::size_t utf8_sequence_length(std::string_view text, std::size_t at) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(at);
  std::size_t length = 0;
  unsigned char low = 0x80, high = 0xbf;  // the allowed range of the second byte
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) low = 0xa0;
    if (lead == 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;
  } else {
    return 0;
  }
  if (at + length > text.size() || byte(at + 1) < low || byte(at + 1) > high) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(at + i) < 0x80 || byte(at + i) > 0xbf) return 0;
  }
  return length;
}

}  // namespace

std::string escape_control(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string escaped;
  escaped.reserve(text.size());
  for (std::size_t at = 0; at < text.size(); ++at) {
    const char c = text[at];
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x80) {
      // C1 controls (U+0080..U+009F, UTF-8 "\xc2\x80".."\xc2\x9f": NEL, CSI, ...) act on a
      // terminal like C0 ones; a byte that is not part of well-formed UTF-8 (a raw 0x9b is CSI
      // to an 8-bit terminal) is written as its value.
      const std::size_t length = utf8_sequence_length(text, at);
      const unsigned char second =
          length == 2 ? static_cast<unsigned char>(text[at + 1]) : static_cast<unsigned char>(0);
      if (length == 0 || (byte == 0xc2 && second <= 0x9f)) {
        const unsigned char shown = length == 0 ? byte : second;
        escaped += length == 0 ? "\\x" : "\\u00";
        escaped += kHex[shown >> 4];
        escaped += kHex[shown & 15];
        at += length == 0 ? 0 : 1;
      } else {
        escaped.append(text.substr(at, length));
        at += length - 1;
      }
    } else if (c == '\n') {
      escaped += "\\n";
    } else if (c == '\r') {
      escaped += "\\r";
    } else if (c == '\t') {
      escaped += "\\t";
    } else if (byte < 0x20 || byte == 0x7f) {
      escaped += "\\x";
      escaped += kHex[byte >> 4];
      escaped += kHex[byte & 15];
    } else {
      escaped += c;
    }
  }
  return escaped;
}

std::string csv_field(std::string_view text) {
  std::string field = "\"";
  for (const char c : text) {
    if (c == '"') field += '"';
    field += c;
  }
  return field + '"';
}

}  // namespace iclbench::util

#pragma once
// Numbers read from text (flags, config files, specs), strictly.
//
// An integer is written in decimal digits with an optional leading '-' and nothing else: no
// '+', no blanks, no exponent ("1e3"), no fraction ("4.7"), no hexadecimal or octal prefix (C's
// strtol reads "010" as 8), and it must fit the type. strtoull, which CLI11 uses, turns "-1" and
// "18446744073709551616" into 2^64 - 1; these refuse instead of wrapping, rounding or clamping.

#include <cstdint>
#include <optional>
#include <string_view>

namespace iclbench::util {

std::optional<std::int64_t> parse_int64(std::string_view text);
std::optional<std::uint64_t> parse_uint64(std::string_view text);

}  // namespace iclbench::util

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

// A real number in decimal notation ("0.5", "-2", "1e-3", ".5") or one of the words inf and
// nan (whose domain checks then refuse them with the parameter's own message), with nothing
// before or after it: no hexadecimal float ("0x1p-3", which strtod and CLI11 accept), no '+',
// no blanks. Out-of-range magnitudes ("1e400") are refused rather than turned into inf.
std::optional<double> parse_real(std::string_view text);

}  // namespace iclbench::util

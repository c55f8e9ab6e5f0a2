#pragma once
// Numbers as text, written the same way in every message, name and report.

#include <initializer_list>
#include <string>
#include <string_view>

namespace iclbench::util {

// printf's "%.*g": `digits` significant digits, no trailing zeros ("0.5", "1e-05", "nan").
// With the default 6 digits it is what `std::ostream << value` writes, the form model and head
// names have always used ("gd-hinge:L=100,eta=1,tau=0.5").
std::string format_number(double value, int digits = 6);

// format_number with `digits` or, where that would print `value` on the other side of one of
// `marks` or on it, more digits (up to 17): a verdict that compares an interval's end with a mark
// must not sit beside a printed end that says the opposite (1.0019 printed as "1" beside "the
// interval does not hold 1").
std::string format_number_beside(double value, int digits, std::initializer_list<double> marks);

// Decimal units with three significant digits: "1.44 GB", "512 B".
std::string human_bytes(double bytes);

// `text` (user input echoed in a message: a flag's value, a path, a name read from a file) with
// every control character written as an escape ("\\n", "\\t", "\\x1b", NUL as "\\x00"), C1 controls
// as "\\u0085", and any byte that is not well-formed UTF-8 as "\\x9b", so that a message stays one
// line and a terminal runs no escape sequence of the input's. Idempotent (a backslash stays).
std::string escape_control(std::string_view text);

// `text` as one CSV field (RFC 4180): always quoted, every '"' doubled, so that a name holding
// a comma or a quote stays one field for any CSV reader.
std::string csv_field(std::string_view text);

}  // namespace iclbench::util

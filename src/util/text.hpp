#pragma once
// Numbers as text, written the same way in every message, name and report.

#include <string>

namespace iclbench::util {

// printf's "%.*g": `digits` significant digits, no trailing zeros ("0.5", "1e-05", "nan").
// With the default 6 digits it is what `std::ostream << value` writes, the form model and head
// names have always used ("gd-hinge:L=100,eta=1,tau=0.5").
std::string format_number(double value, int digits = 6);

// Decimal units with three significant digits: "1.44 GB", "512 B".
std::string human_bytes(double bytes);

}  // namespace iclbench::util

#pragma once
// JSON read strictly: what a hand-written config file gets wrong is refused, not guessed.
//
// nlohmann::json keeps the last of two equal keys and converts 4.7 to the integer 4 on get<int>();
// the readers here refuse both, and an unknown key (a typo such as "task" for "tasks" would
// otherwise run the default silently). Errors are ParameterError naming the key, so a caller can
// prefix the file's name.

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "util/errors.hpp"

namespace iclbench::io {

// Parses `text`; throws std::invalid_argument on a syntax error, a NUL byte anywhere (with
// trailing garbage after it), or a key repeated in one object ("duplicate key 'tasks'").
nlohmann::json parse_json_strict(std::string_view text);

// Throws ParameterError(key, "is not a known key (known: ...)") for the first key of `object`
// not in `known`.
void require_known_keys(const nlohmann::json& object, std::initializer_list<std::string_view> known);

// The integer `value` as T: a JSON integer (not 4.0 or 4.7) within T's range; ParameterError
// naming `key` otherwise.
template <typename T>
T integer_value(const nlohmann::json& value, const std::string& key) {
  util::require(value.is_number_integer(), key, "must be an integer, got " + value.dump());
  if (value.is_number_unsigned()) {
    const auto number = value.get<std::uint64_t>();
    util::require(number <= static_cast<std::uint64_t>(std::numeric_limits<T>::max()), key,
                  "is out of range, got " + value.dump());
    return static_cast<T>(number);
  }
  const auto number = value.get<std::int64_t>();
  util::require(number >= static_cast<std::int64_t>(std::numeric_limits<T>::min()) &&
                    (number < 0 || static_cast<std::uint64_t>(number) <=
                                       static_cast<std::uint64_t>(std::numeric_limits<T>::max())),
                key, "is out of range, got " + value.dump());
  return static_cast<T>(number);
}

// object[key] as T if present, else `fallback`.
template <typename T>
T integer_at(const nlohmann::json& object, const std::string& key, T fallback) {
  return object.contains(key) ? integer_value<T>(object.at(key), key) : fallback;
}

// object[key], a list of integers.
template <typename T>
std::vector<T> integer_list(const nlohmann::json& object, const std::string& key) {
  util::require(object.contains(key), key, "is missing");
  util::require(object.at(key).is_array(), key, "must be a list");
  std::vector<T> values;
  for (const nlohmann::json& entry : object.at(key)) values.push_back(integer_value<T>(entry, key));
  return values;
}

}  // namespace iclbench::io

#include "io/strict_json.hpp"

#include <set>
#include <stdexcept>

namespace iclbench::io {

nlohmann::json parse_json_strict(std::string_view text) {
  // nlohmann's parser stops at a NUL byte as at the end of its input, so "{...}\0garbage" would
  // pass; JSON text has no place for one (inside a string it must be written \u0000).
  if (const std::size_t nul = text.find('\0'); nul != std::string_view::npos) {
    throw std::invalid_argument("not valid JSON: a NUL byte at offset " + std::to_string(nul));
  }
  // One set of keys per open object; the parser's callback sees every key as it is read.
  std::vector<std::set<std::string>> keys;
  std::string duplicate;
  auto callback = [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    switch (event) {
      case nlohmann::json::parse_event_t::object_start:
        keys.emplace_back();
        break;
      case nlohmann::json::parse_event_t::object_end:
        keys.pop_back();
        break;
      case nlohmann::json::parse_event_t::key:
        if (!keys.back().insert(parsed.get<std::string>()).second && duplicate.empty()) {
          duplicate = parsed.get<std::string>();
        }
        break;
      default:
        break;
    }
    return true;
  };
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text.begin(), text.end(), callback);
  } catch (const nlohmann::json::exception& error) {
    throw std::invalid_argument(std::string("not valid JSON: ") + error.what());
  }
  if (!duplicate.empty()) throw std::invalid_argument("duplicate key '" + duplicate + "'");
  return json;
}

void require_known_keys(const nlohmann::json& object, std::initializer_list<std::string_view> known) {
  for (const auto& [key, value] : object.items()) {
    bool found = false;
    for (std::string_view name : known) found = found || name == key;
    if (!found) {
      std::string list;
      for (std::string_view name : known) list += (list.empty() ? "" : ", ") + std::string(name);
      throw util::ParameterError(key, "is not a known key (known: " + list + ")");
    }
  }
}

}  // namespace iclbench::io

// A guard for every word handed to Boost.Program_options (echod's settings, echo-bench's
// command line). Program_options 1.74 writes its error messages by replacing %placeholders%
// (%value%, %canonical_option%, ...) in a template with the offending token, over and over until
// none is left: a token that itself contains the placeholder makes what() loop forever (found by
// fuzzing: `--x=%value%'`). No setting needs such text, so it is refused before parsing.
// Header-only, so echo-bench can use it without linking echod's SDK.
#pragma once

#include <cctype>
#include <string>
#include <string_view>

namespace echod {

// The first "%word%" (letters, digits, '_') in `text`, or an empty view if there is none.
[[nodiscard]] inline std::string_view placeholder_in(std::string_view text) noexcept {
  for (std::size_t start = text.find('%'); start != std::string_view::npos;
       start = text.find('%', start + 1)) {
    std::size_t end = start + 1;
    while (end < text.size() &&
           (std::isalnum(static_cast<unsigned char>(text[end])) != 0 || text[end] == '_')) {
      ++end;
    }
    if (end > start + 1 && end < text.size() && text[end] == '%') {
      return text.substr(start, end - start + 1);
    }
  }
  return {};
}

// "'%value%' is not accepted in settings ...", for an error message about `text`; empty if
// `text` is fine.
[[nodiscard]] inline std::string placeholder_complaint(std::string_view text) {
  const std::string_view found = placeholder_in(text);
  if (found.empty()) return {};
  return "'" + std::string(found) +
         "' is not accepted in an option or value (Program_options cannot report it); remove "
         "the % signs";
}

}  // namespace echod

// A small streaming JSON writer (pretty-printed, two-space indent): enough for one report,
// without pulling a JSON library into the client.
#pragma once

#include <cstdint>
#include <ostream>
#include <string_view>
#include <vector>

namespace echod::bench {

// Not thread-safe; owned by whoever writes the report.
class JsonWriter {
 public:
  explicit JsonWriter(std::ostream& out) : out_(out) {}
  JsonWriter(const JsonWriter&) = delete;
  JsonWriter& operator=(const JsonWriter&) = delete;

  // Inside an object, each value is preceded by key(); inside an array, not.
  JsonWriter& key(std::string_view name);
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& value(std::string_view text);
  JsonWriter& value(const char* text) { return value(std::string_view(text)); }
  JsonWriter& value(double number);  // NaN and infinities are written as null
  JsonWriter& value(std::int64_t number);
  JsonWriter& value(std::uint64_t number);
  JsonWriter& value(int number) { return value(static_cast<std::int64_t>(number)); }
  JsonWriter& value(bool flag);
  JsonWriter& null();

  // key(name).value(v) in one call.
  template <typename T>
  JsonWriter& field(std::string_view name, const T& v) {
    return key(name).value(v);
  }

 private:
  void before_value();
  void newline();
  void write_string(std::string_view text);

  std::ostream& out_;
  std::vector<bool> has_items_;  // one entry per open object/array
  bool after_key_ = false;
};

}  // namespace echod::bench

// Every numeric option echod lists in `--help --model=X`, of core and of every model found,
// rejects bad values (issue 13, defect 2): -1, 99999999999999999999, a value just past either
// end of its range, and a non-number, each with exit status 2 and one line on stderr naming the
// key and where the value came from (command line, or file:line), and accepts its default and
// both ends of its range. The keys and their ranges are discovered, so a new model or key is
// covered without editing this file: the keys from --help, the range from the error for -1
// ("must be ... between LOW and HIGH"). A key that accepts "true" is a switch and has no range.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "echod_test.hpp"

using namespace echod::test;

namespace {

struct NumericOption {
  std::string section;  // "" for core keys, else the model (the config file section)
  std::string name;     // as on the command line, without "--": "high-water", "epoll.max-events"
  std::string default_value;
};

// Catch runs a test case once per DYNAMIC_SECTION, so what the loops below discover is asked of
// echod once and kept: otherwise every section would rerun --list-models and every model's
// --help (quadratic in the number of options, minutes under the sanitizers).
std::vector<std::string> discover_model_names() {
  const RunResult listed = run_echod({"--list-models"});
  REQUIRE(listed.exit_status == 0);
  std::vector<std::string> names;
  std::istringstream lines(listed.out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string name;
    if (words >> name) names.push_back(name);
  }
  REQUIRE_FALSE(names.empty());
  return names;
}

// The options of `--help --model=MODEL` whose default is a number: the core ones (outside the
// "General" section, which holds no settings) when `model_only` is false, else the model's.
std::vector<NumericOption> discover_numeric_options(const std::string& model, bool model_only) {
  const RunResult help = run_echod({"--help", "--model=" + model});
  INFO("echod --help --model=" << model << ": " << help.err);
  REQUIRE(help.exit_status == 0);
  static const std::regex option_line(
      R"(^  (?:-[a-z] \[ )?--([a-z0-9.-]+)(?: \])? arg \(=(-?[0-9]+(?:\.[0-9]+)?)\))");
  std::vector<NumericOption> options;
  std::istringstream lines(help.out);
  std::string line;
  std::string section;
  while (std::getline(lines, line)) {
    if (!line.empty() && line[0] != ' ') {
      section = line;
      continue;
    }
    std::smatch match;
    if (!std::regex_search(line, match, option_line)) continue;
    const std::string name = match[1];
    const bool of_model = name.rfind(model + ".", 0) == 0;
    if (model_only != of_model || section == "General:") continue;
    options.push_back({of_model ? model : "", name, match[2]});
  }
  return options;
}

const std::vector<std::string>& model_names() {
  static const std::vector<std::string> names = discover_model_names();
  return names;
}

const std::vector<NumericOption>& numeric_options(const std::string& model, bool model_only) {
  static std::map<std::pair<std::string, bool>, std::vector<NumericOption>> discovered;
  const auto key = std::make_pair(model, model_only);
  auto found = discovered.find(key);
  if (found == discovered.end()) {
    found = discovered.emplace(key, discover_numeric_options(model, model_only)).first;
  }
  return found->second;
}

// The stderr check shared by every rejection: exit 2, exactly one line, naming `key` and `origin`.
Outcome rejected(const RunResult& run, const std::string& key, const std::string& origin) {
  std::string error;
  if (run.exit_status != 2) {
    error += "exit status " + (run.exit_status ? std::to_string(*run.exit_status) : "none") +
             ", expected 2; ";
  }
  const auto newline = run.err.find('\n');
  if (newline == std::string::npos || newline + 1 != run.err.size()) {
    error += "stderr is not exactly one line; ";
  }
  if (run.err.find(key) == std::string::npos) error += "stderr does not name '" + key + "'; ";
  if (run.err.find(origin) == std::string::npos) error += "stderr does not say '" + origin + "'; ";
  if (run.out.find("configuration ok") != std::string::npos) error += "stdout says ok; ";
  if (error.empty()) return {};
  return Outcome::failure(error + "stderr: " + run.err);
}

Outcome accepted(const RunResult& run) {
  if (run.exit_status == 0 && run.out == "configuration ok\n") return {};
  return Outcome::failure("exit status " +
                          (run.exit_status ? std::to_string(*run.exit_status) : "none") +
                          ", stdout: " + run.out + ", stderr: " + run.err);
}

RunResult check_config(const std::string& model, const std::vector<std::string>& more) {
  // No --port: a value given on the command line would override the one in a config file.
  std::vector<std::string> args{"--check-config", "--model=" + model};
  args.insert(args.end(), more.begin(), more.end());
  return run_echod(args);
}

RunResult check_command_line(const std::string& model, const NumericOption& option,
                             const std::string& value) {
  return check_config(model, {"--" + option.name + "=" + value});
}

// The value on line 3 of a temporary config file: in the model's section, or in the core part.
// Owned by the test thread; removed on destruction.
struct ConfigFile {
  std::string path;
  ConfigFile(const NumericOption& option, const std::string& value) {
    char name[] = "/tmp/echod-option-values-XXXXXX.conf";
    const int fd = ::mkstemps(name, 5);
    REQUIRE(fd >= 0);
    ::close(fd);
    path = name;
    std::ofstream file(path);
    if (option.section.empty()) {
      file << "# one bad value on line 3\n\n" << option.name << " = " << value << "\n";
    } else {
      file << "# one bad value on line 3\n[" << option.section << "]\n"
           << option.name.substr(option.section.size() + 1) << " = " << value << "\n";
    }
  }
  ConfigFile(const ConfigFile&) = delete;
  ConfigFile& operator=(const ConfigFile&) = delete;
  ~ConfigFile() { ::unlink(path.c_str()); }
};

// One past `bound` outward (`direction` +1 or -1): the next integer for an integer bound, else
// half of it below (0.1 -> 0.05) or one above.
std::string just_past(const std::string& bound, int direction) {
  const bool integer = bound.find('.') == std::string::npos;
  const double value = std::stod(bound);
  if (integer) return std::to_string(std::llround(value) + direction);
  char text[64];
  std::snprintf(text, sizeof text, "%.10g", direction < 0 ? value / 2 : value + 1);
  return text;
}

void check_option(const std::string& model, const NumericOption& option) {
  const std::string key =
      option.section.empty() ? option.name : option.name.substr(option.section.size() + 1);
  INFO("model " << model << ", option --" << option.name << " (default " << option.default_value
                << ")");
  REQUIRE(accepted(check_command_line(model, option, option.default_value)));

  const bool is_switch = static_cast<bool>(accepted(check_command_line(model, option, "true")));
  std::vector<std::string> bad{"-1", "99999999999999999999", "abc"};
  if (!is_switch) {
    const RunResult negative = check_command_line(model, option, "-1");
    REQUIRE(rejected(negative, option.name, "command line"));
    static const std::regex range(R"(between (-?[0-9]+(?:\.[0-9]+)?) and (-?[0-9]+(?:\.[0-9]+)?))");
    std::smatch match;
    INFO("the error for -1 names no range 'between LOW and HIGH': " << negative.err);
    REQUIRE(std::regex_search(negative.err, match, range));
    const std::string low = match[1];
    const std::string high = match[2];
    INFO("range " << low << ".." << high);
    // Both ends pass the range check. A model may still refuse an end against another of its
    // keys (prefork.start above prefork.max): then its own message names this key, and never
    // as out of range.
    for (const std::string& end : {low, high}) {
      const RunResult result = check_command_line(model, option, end);
      INFO("value " << end << ": " << result.err);
      const bool cross_checked = result.exit_status == 2 &&
                                 result.err.rfind("echod: model " + model + ": ", 0) == 0 &&
                                 result.err.find(option.name) != std::string::npos &&
                                 result.err.find("is invalid") == std::string::npos;
      REQUIRE((static_cast<bool>(accepted(result)) || cross_checked));
    }
    bad.push_back(just_past(high, +1));
    if (std::stod(low) > 0) {
      // Below the range; not 0, which a range such as "0 or between 1 and 86400" allows (off).
      std::string below = just_past(low, -1);
      if (std::stod(below) == 0) below = just_past(std::to_string(std::stod(low)), -1);
      bad.push_back(below);
    }
  }
  for (const std::string& value : bad) {
    INFO("value " << value << " on the command line");
    REQUIRE(rejected(check_command_line(model, option, value), option.name, "command line"));
    const ConfigFile file(option, value);
    INFO("value " << value << " on line 3 of " << file.path);
    REQUIRE(rejected(check_config(model, {"--config", file.path}), key, file.path + ":3:"));
  }
}

}  // namespace

TEST_CASE("every numeric option of every model rejects bad values, naming key and origin") {
  int checked = 0;
  for (const std::string& model : model_names()) {
    for (const NumericOption& option : numeric_options(model, /*model_only=*/true)) {
      // One section each, so that a failing option does not hide the others' results.
      DYNAMIC_SECTION("--" << option.name) {
        check_option(model, option);
      }
      ++checked;
    }
  }
  INFO(checked << " numeric model options checked");
  // epoll.max-events at least; a parse of --help that found nothing must not pass.
  REQUIRE(checked > 0);
}

TEST_CASE("every numeric core option rejects bad values, naming key and origin") {
  const std::vector<NumericOption>& options = numeric_options("iterative", /*model_only=*/false);
  for (const NumericOption& option : options) {
    DYNAMIC_SECTION("--" << option.name) {
      check_option("iterative", option);
    }
  }
  INFO(options.size() << " numeric core options checked");
  REQUIRE(options.size() >= 3);  // port, backlog, high-water at least
}

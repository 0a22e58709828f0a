// Settings: defaults, the INI file, the command line's precedence over it, model sections, and
// the errors a user sees for unknown keys and bad values.
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "config.hpp"

namespace po = boost::program_options;
using echod::core_settings;
using echod::parse_settings;
using echod::UsageError;

namespace {

// A config file in a private temporary directory, removed at the end of the test.
class TempConfig {
 public:
  explicit TempConfig(const std::string& text) {
    char dir_template[] = "/tmp/echod-config-XXXXXX";
    REQUIRE(::mkdtemp(dir_template) != nullptr);
    dir_ = dir_template;
    path_ = dir_ + "/echod.conf";
    std::ofstream(path_) << text;
  }
  TempConfig(const TempConfig&) = delete;
  TempConfig& operator=(const TempConfig&) = delete;
  ~TempConfig() {
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string dir_, path_;
};

// Core options plus a stand-in model section, as echod builds them after loading models.
po::options_description options_with_model() {
  po::options_description all = echod::core_options();
  po::options_description model("Model 'demo'");
  model.add_options()("demo.workers", po::value<int>()->default_value(10), "workers");
  all.add(model);
  return all;
}

po::variables_map parse(std::vector<std::string> args, bool strict = true) {
  args.insert(args.begin(), "echod");
  std::vector<const char*> argv;
  for (const auto& arg : args)
    argv.push_back(arg.c_str());
  return parse_settings(static_cast<int>(argv.size()), argv.data(), options_with_model(), strict);
}

}  // namespace

TEST_CASE("defaults apply when nothing is given", "[config]") {
  auto core = core_settings(parse({}));
  CHECK(core.model == "epoll");
  CHECK(core.bind == "127.0.0.1");
  CHECK(core.port == 7777);
  CHECK(core.log_level == "info");
  CHECK(core.high_water == 1024 * 1024);
}

TEST_CASE("the config file sets core keys and model sections", "[config]") {
  TempConfig conf("model = iterative\nport = 9000\n[demo]\nworkers = 3\n");
  auto settings = parse({"--config", conf.path()});
  auto core = core_settings(settings);
  CHECK(core.model == "iterative");
  CHECK(core.port == 9000);
  CHECK(settings["demo.workers"].as<int>() == 3);
}

TEST_CASE("the command line overrides the config file", "[config]") {
  TempConfig conf("model = iterative\nport = 9000\n[demo]\nworkers = 3\n");
  auto settings = parse({"--config", conf.path(), "--model=epoll", "--demo.workers=5"});
  auto core = core_settings(settings);
  CHECK(core.model == "epoll");
  CHECK(core.port == 9000);
  CHECK(settings["demo.workers"].as<int>() == 5);
}

TEST_CASE("the shipped conf/echod.conf parses", "[config]") {
  // Its model sections belong to models that are not loaded here: parse leniently.
  auto core =
      core_settings(parse({"--config", ECHOD_TEST_CONF_DIR "/echod.conf"}, /*strict=*/false));
  CHECK(core.model == "epoll");
  CHECK(core.port == 7777);
}

TEST_CASE("unknown keys are errors that name the key and where it came from", "[config]") {
  TempConfig conf("[demo]\nworkerz = 3\n");
  REQUIRE_THROWS_WITH(parse({"--config", conf.path()}),
                      Catch::Contains(conf.path()) &&
                          Catch::Contains("unknown option 'demo.workerz'") &&
                          Catch::Contains("--model=demo"));
  REQUIRE_THROWS_WITH(parse({"--bogus"}), Catch::Contains("command line: unknown option 'bogus'"));
  // The first pass ignores keys it cannot know yet.
  REQUIRE_NOTHROW(parse({"--other.key=1"}, /*strict=*/false));
}

TEST_CASE("bad values are errors that name the key", "[config]") {
  TempConfig conf("port = seventy\n");
  REQUIRE_THROWS_WITH(parse({"--config", conf.path()}),
                      Catch::Contains("seventy") && Catch::Contains("port"));
  REQUIRE_THROWS_AS(core_settings(parse({"--port=70000"})), UsageError);
  REQUIRE_THROWS_WITH(core_settings(parse({"--port=-1"})), Catch::Contains("between 0 and 65535"));
  REQUIRE_THROWS_WITH(core_settings(parse({"--high-water=10"})), Catch::Contains("high-water"));
  REQUIRE_THROWS_WITH(parse({"--config", "/nonexistent/echod.conf"}),
                      Catch::Contains("cannot read config file"));
}

TEST_CASE("negative, overflowing and out-of-range numbers are refused by key and origin",
          "[config]") {
  // Program_options alone would turn -1 into SIZE_MAX for an unsigned key.
  REQUIRE_THROWS_WITH(parse({"--high-water=-1"}),
                      Catch::StartsWith("command line: ") &&
                          Catch::Contains("'--high-water' is invalid") &&
                          Catch::Contains("between 1024 and 1073741824"));
  REQUIRE_THROWS_WITH(parse({"--max-connections=99999999999999999999"}),
                      Catch::Contains("'--max-connections' is invalid"));
  REQUIRE_THROWS_WITH(parse({"--stop-timeout=0"}),
                      Catch::Contains("'--stop-timeout' is invalid: must be a number between 0.1"));
  REQUIRE_THROWS_WITH(parse({"--idle-timeout=nan"}), Catch::Contains("'--idle-timeout'"));
  REQUIRE_THROWS_WITH(parse({"--drain-timeout=1e9"}), Catch::Contains("'--drain-timeout'"));
  REQUIRE_THROWS_WITH(parse({"--backlog=12abc"}), Catch::Contains("'--backlog'"));
  TempConfig conf("model = epoll\n\n# comment\nidle-timeout = -3\n");
  REQUIRE_THROWS_WITH(
      parse({"--config", conf.path()}),
      Catch::StartsWith(conf.path() + ":4: ") && Catch::Contains("'idle-timeout' is invalid"));
}

TEST_CASE("endpoint keys become limits", "[config]") {
  auto core =
      core_settings(parse({"--max-connections=10", "--max-connections-per-ip=0",
                           "--idle-timeout=0.25", "--drain-timeout=1.5", "--stop-timeout=3",
                           "--tcp-keepalive=30", "--per-ip-exempt=10.0.0.0/8,::1 192.168.1.1"}));
  CHECK(core.limits.max_connections == 10);
  CHECK(core.limits.max_per_ip == 0);
  CHECK(core.limits.idle_timeout == std::chrono::milliseconds(250));
  CHECK(core.drain_timeout == std::chrono::milliseconds(1500));
  CHECK(core.stop_timeout == std::chrono::milliseconds(3000));
  CHECK(core.limits.tcp_keepalive == std::chrono::milliseconds(30000));
  CHECK(core.limits.linger == std::chrono::milliseconds(1500));  // half the stop timeout
  CHECK(core.limits.per_ip_exempt.size() == 3);
  REQUIRE_THROWS_WITH(core_settings(parse({"--per-ip-exempt=10.0.0.0/33"})),
                      Catch::Contains("per-ip-exempt: '10.0.0.0/33'"));
  REQUIRE_THROWS_WITH(
      parse({"--tcp-keepalive=0.5"}),
      Catch::Contains(
          "'--tcp-keepalive' is invalid: must be 0 (off) or a whole number between 1 and 86400"));
  // Below a millisecond is refused: it would round to 0, which means off.
  REQUIRE_THROWS_WITH(parse({"--tcp-user-timeout=0.0005"}),
                      Catch::Contains("must be 0 (off) or a number between 0.001 and 86400"));
  CHECK(core_settings(parse({"--tcp-user-timeout=0.0015"})).limits.tcp_user_timeout ==
        std::chrono::milliseconds(2));
  // An empty value after '=' is an empty list, not an error.
  CHECK(core_settings(parse({"--per-ip-exempt="})).limits.per_ip_exempt.empty());
  auto defaults = core_settings(parse({}));
  CHECK(defaults.limits.idle_timeout == std::chrono::seconds(300));
  CHECK(defaults.drain_timeout == std::chrono::seconds(10));
}

TEST_CASE("a Program_options placeholder in a word is refused, not looped on", "[config]") {
  // Boost 1.74 replaces %value% in its message with the token, again and again: a token that
  // holds %value% never ends (found by fuzzing).
  REQUIRE_THROWS_WITH(parse({"--demo.workers=\xff%value%'"}),
                      Catch::StartsWith("command line: '%value%' is not accepted"));
  REQUIRE_THROWS_WITH(parse({"--x%canonical_option%y=1"}, /*strict=*/false),
                      Catch::Contains("'%canonical_option%' is not accepted"));
  TempConfig conf("model = epoll\n[demo]\nworkers = %original_token%\n");
  REQUIRE_THROWS_WITH(parse({"--config", conf.path()}),
                      Catch::StartsWith(conf.path() + ":3: '%original_token%' is not accepted"));
  // A lone % or %% is fine to hand over.
  REQUIRE_THROWS_WITH(parse({"--port=50%"}), Catch::Contains("'--port' is invalid"));
}

#include "logging.hpp"

#include <stdexcept>

#include <spdlog/sinks/stdout_sinks.h>

namespace echod {

std::shared_ptr<spdlog::logger> make_logger(const std::string& name, const std::string& level) {
  auto parsed = spdlog::level::from_str(level);
  // from_str maps anything unknown to "off"; only "off" itself may mean off.
  if (parsed == spdlog::level::off && level != "off") {
    throw std::invalid_argument("unknown log level '" + level +
                                "' (use trace, debug, info, warn, error, critical or off)");
  }
  auto logger =
      std::make_shared<spdlog::logger>(name, std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_level(parsed);
  // The pid tells the processes of fork and prefork apart.
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%n:%P] [%l] %v");
  logger->flush_on(spdlog::level::info);
  return logger;
}

}  // namespace echod

// The one place echod's loggers are made. Nothing is registered in spdlog's global registry:
// models receive their logger through ServerContext.
#pragma once

#include <memory>
#include <string>

#include <spdlog/logger.h>

namespace echod {

// A logger writing to stderr at `level` (trace, debug, info, warn, error, critical, off).
// Throws std::invalid_argument for an unknown level name.
std::shared_ptr<spdlog::logger> make_logger(const std::string& name, const std::string& level);

}  // namespace echod

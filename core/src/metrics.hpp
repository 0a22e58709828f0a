// --metrics ADDR:PORT: Prometheus text format over HTTP (prometheus-cpp's pull exposer).
// Nothing is counted for it: at each scrape the Endpoint's shared counters (summed over every
// thread and forked worker already, for the stop summary) and /proc/self are read, so serving
// metrics adds no write to the hot path.
#pragma once

#include <memory>
#include <string>

namespace prometheus {
class Exposer;
}

namespace echod {

class Endpoint;

// Owns the exposer's threads (civetweb's listener and one worker), started by the constructor
// and joined by the destructor; the main thread owns the object. The threads are created with
// every signal blocked, so SIGINT/SIGTERM/SIGCHLD keep going to the model's threads.
class MetricsServer {
 public:
  // Throws std::runtime_error ("cannot serve metrics on ADDR:PORT: ...") if it cannot bind.
  MetricsServer(const std::string& address, const Endpoint& endpoint, std::string model,
                std::string version);
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  ~MetricsServer();

  // "127.0.0.1:9100", the port as bound.
  [[nodiscard]] std::string address() const;

 private:
  std::shared_ptr<class EndpointCollector> collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace echod

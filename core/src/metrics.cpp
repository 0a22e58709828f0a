#include "metrics.hpp"

#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

#include "echod/endpoint.hpp"

namespace echod {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

ClientMetric value_metric(MetricType type, double value,
                          std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric metric;
  metric.label = std::move(labels);
  if (type == MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  return metric;
}

MetricFamily family(std::string name, std::string help, MetricType type,
                    std::vector<ClientMetric> metrics) {
  return MetricFamily{std::move(name), std::move(help), type, std::move(metrics)};
}

// utime+stime (seconds) and RSS (bytes) of this process from /proc/self/stat. Forked workers
// are separate processes: their CPU shows here once reaped (cutime/cstime are added).
void process_usage(double& cpu_seconds, double& rss_bytes) {
  cpu_seconds = 0;
  rss_bytes = 0;
  std::ifstream stat("/proc/self/stat");
  std::string line;
  if (!std::getline(stat, line)) return;
  const auto close = line.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return;
  std::istringstream fields(line.substr(close + 2));
  std::vector<std::string> field;
  for (std::string f; fields >> f;)
    field.push_back(f);
  // Field 3 (state) is field[0]; utime=14, stime=15, cutime=16, cstime=17, rss=24.
  if (field.size() < 22) return;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  cpu_seconds =
      (std::stod(field[11]) + std::stod(field[12]) + std::stod(field[13]) + std::stod(field[14])) /
      ticks;
  rss_bytes = std::stod(field[21]) * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

}  // namespace

class EndpointCollector : public prometheus::Collectable {
 public:
  EndpointCollector(const Endpoint& endpoint, std::string model, std::string version)
      : endpoint_(endpoint), model_(std::move(model)), version_(std::move(version)) {}

  std::vector<MetricFamily> Collect() const override {
    const EndpointCounts c = endpoint_.counts();
    const auto counter = MetricType::Counter;
    const auto gauge = MetricType::Gauge;
    // Every admitted connection that is no longer open was closed; the client closed those
    // that neither ended on an I/O error nor were closed by the idle timeout or the drain (an
    // error counts as one even during a drain; any other drain-phase close counts as drain).
    const std::uint64_t closed = c.accepted - c.open;
    const std::uint64_t otherwise = c.errors + c.closed_idle + c.drained;
    const std::uint64_t by_client = closed > otherwise ? closed - otherwise : 0;
    double cpu = 0, rss = 0;
    process_usage(cpu, rss);
    std::vector<MetricFamily> out;
    out.push_back(family("echod_info", "The model serving and the echod version", gauge,
                         {value_metric(gauge, 1, {{"model", model_}, {"version", version_}})}));
    out.push_back(family("echod_connections_accepted_total", "Connections admitted under the caps",
                         counter, {value_metric(counter, static_cast<double>(c.accepted))}));
    out.push_back(family("echod_connections_open", "Connections open now", gauge,
                         {value_metric(gauge, static_cast<double>(c.open))}));
    out.push_back(family(
        "echod_connections_closed_total",
        "Connections ended, by kind: client (the client closed cleanly), idle_timeout, drain "
        "(closed after the first stop signal); refused_max_connections, refused_per_ip and "
        "shed_emfile were never admitted",
        counter,
        {value_metric(counter, static_cast<double>(by_client), {{"kind", "client"}}),
         value_metric(counter, static_cast<double>(c.closed_idle), {{"kind", "idle_timeout"}}),
         value_metric(counter, static_cast<double>(c.drained), {{"kind", "drain"}}),
         value_metric(counter, static_cast<double>(c.refused_max_connections),
                      {{"kind", "refused_max_connections"}}),
         value_metric(counter, static_cast<double>(c.refused_per_ip), {{"kind", "refused_per_ip"}}),
         value_metric(counter, static_cast<double>(c.shed_emfile), {{"kind", "shed_emfile"}})}));
    out.push_back(family("echod_connection_errors_total",
                         "Admitted connections that ended on an I/O error (reset, broken pipe, "
                         "an unexpected errno from recv or send)",
                         counter, {value_metric(counter, static_cast<double>(c.errors))}));
    out.push_back(family("echod_received_bytes_total",
                         "Bytes received on connections that have closed (added at close)", counter,
                         {value_metric(counter, static_cast<double>(c.bytes_in))}));
    out.push_back(family("echod_sent_bytes_total",
                         "Bytes echoed on connections that have closed (added at close)", counter,
                         {value_metric(counter, static_cast<double>(c.bytes_out))}));
    out.push_back(family("process_cpu_seconds_total",
                         "User and system CPU of echod (and reaped workers)", counter,
                         {value_metric(counter, cpu)}));
    out.push_back(family("process_resident_memory_bytes", "Resident set size of echod", gauge,
                         {value_metric(gauge, rss)}));
    return out;
  }

 private:
  const Endpoint& endpoint_;
  std::string model_;
  std::string version_;
};

MetricsServer::MetricsServer(const std::string& address, const Endpoint& endpoint,
                             std::string model, std::string version)
    : collector_(
          std::make_shared<EndpointCollector>(endpoint, std::move(model), std::move(version))) {
  sigset_t all, previous;
  sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, &previous);
  try {
    // One worker thread: a scrape every few seconds needs no more.
    exposer_ = std::make_unique<prometheus::Exposer>(address, 1);
  } catch (const std::exception& e) {
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    throw std::runtime_error("cannot serve metrics on " + address + ": " + e.what());
  }
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  exposer_->RegisterCollectable(collector_);
}

MetricsServer::~MetricsServer() = default;

std::string MetricsServer::address() const {
  const auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? std::string("?") : std::to_string(ports.front());
}

}  // namespace echod

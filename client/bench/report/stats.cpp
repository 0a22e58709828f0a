#include "report/stats.hpp"

#include <algorithm>

namespace echod::bench {

void Counters::merge(const Counters& other) {
  connections_attempted += other.connections_attempted;
  connections_established += other.connections_established;
  connections_completed += other.connections_completed;
  connections_open_at_end += other.connections_open_at_end;
  messages_sent += other.messages_sent;
  messages_echoed += other.messages_echoed;
  messages_lost += other.messages_lost;
  messages_cut_short += other.messages_cut_short;
  messages_due_not_sent += other.messages_due_not_sent;
  bytes_sent += other.bytes_sent;
  bytes_echoed += other.bytes_echoed;
  measured_messages += other.measured_messages;
  measured_bytes += other.measured_bytes;
  measured_connections += other.measured_connections;
}

void CpuWindow::merge(const CpuWindow& other) {
  start = std::min(start, other.start);
  end = std::max(end, other.end);
  client += other.client;
  busiest_thread_fraction = std::max(busiest_thread_fraction, other.busiest_thread_fraction);
}

void WorkerStats::merge(const WorkerStats& other) {
  counters.merge(other.counters);
  errors.merge(other.errors);
  latency.merge(other.latency);
  latency_uncorrected.merge(other.latency_uncorrected);
  connect.merge(other.connect);
  connection_total.merge(other.connection_total);
  if (parts.size() < other.parts.size()) parts.resize(other.parts.size());
  for (std::size_t i = 0; i < other.parts.size(); ++i) {
    parts[i].start = std::min(parts[i].start, other.parts[i].start);
    parts[i].end = std::max(parts[i].end, other.parts[i].end);
  }
  window.merge(other.window);
}

}  // namespace echod::bench

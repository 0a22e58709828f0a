#include "engine/server_cpu_sampler.hpp"

namespace echod::bench {

ServerCpuSampler::ServerCpuSampler(Sample sample)
    : sample_(std::move(sample)), thread_([this] { serve(); }) {}

ServerCpuSampler::~ServerCpuSampler() {
  stop();
}

void ServerCpuSampler::request_start() {
  std::lock_guard lock(mutex_);
  start_wanted_ = true;
  wake_.notify_one();
}

void ServerCpuSampler::request_end() {
  std::lock_guard lock(mutex_);
  end_wanted_ = true;
  wake_.notify_one();
}

void ServerCpuSampler::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    wake_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

std::optional<ServerCpu> ServerCpuSampler::result() const {
  std::lock_guard lock(mutex_);
  if (!start_ || !end_ || !start_->cpu || !end_->cpu) return std::nullopt;
  if (end_->cpu->total_s() < start_->cpu->total_s() || end_->at <= start_->at) return std::nullopt;
  return ServerCpu{*end_->cpu - *start_->cpu, ns_to_seconds(end_->at - start_->at)};
}

void ServerCpuSampler::serve() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return start_wanted_ || end_wanted_ || stopping_; });
    // The start before the end, even when both were asked for at once (a very short window).
    if (start_wanted_ || end_wanted_) {
      const bool is_start = start_wanted_;
      (is_start ? start_wanted_ : end_wanted_) = false;
      lock.unlock();
      // Stamped with the middle of the read: /proc is read process by process.
      const Nanos before = now_ns();
      Stamped stamped{sample_(), 0};
      stamped.at = before + (now_ns() - before) / 2;
      lock.lock();
      (is_start ? start_ : end_) = stamped;
      continue;
    }
    if (stopping_) return;
  }
}

}  // namespace echod::bench

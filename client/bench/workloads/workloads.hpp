// The four workloads, each a Worker subclass; the runner asks for one per thread.
#pragma once

#include <cstddef>
#include <memory>

#include "engine/worker.hpp"

namespace echod::bench {

// This thread's share of `total` items dealt round-robin over `threads` threads.
std::size_t share_of(std::size_t total, int threads, int thread_index);

std::unique_ptr<Worker> make_worker(const RunSetup& setup, RunControl& control, int thread_index);

}  // namespace echod::bench

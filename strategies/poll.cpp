// poll: one thread, nonblocking sockets, readiness from poll(). Every wait hands the kernel an
// array of every connection, which it scans: O(connections), not O(ready), like select, but
// without select's FD_SETSIZE ceiling: any descriptor the process may open can be watched.
// Loses to epoll when thousands of mostly idle clients are connected.
#include <poll.h>

#include <exception>
#include <vector>

#include "echod/rebuilt_interest_loop.hpp"
#include "echod/server_model.hpp"

namespace {

using namespace echod;
namespace po = boost::program_options;

// One pollfd per watched descriptor, refilled before every poll(). Owned by the loop thread.
class PollSet {
 public:
  void clear() { pollfds_.clear(); }
  int arm(int fd, bool read, bool write) {
    const auto events = static_cast<short>((read ? POLLIN : 0) | (write ? POLLOUT : 0));
    pollfds_.push_back({events != 0 ? fd : -1, events, 0});  // poll() skips negative descriptors
    return static_cast<int>(pollfds_.size() - 1);
  }
  int wait(int timeout_ms) { return ::poll(pollfds_.data(), pollfds_.size(), timeout_ms); }
  // Errors and hang-ups count as both: the next recv() or send() reports them.
  [[nodiscard]] Readiness readiness(int slot) const {
    const short revents = pollfds_[static_cast<std::size_t>(slot)].revents;
    return {(revents & (POLLIN | POLLERR | POLLHUP)) != 0,
            (revents & (POLLOUT | POLLERR | POLLHUP)) != 0};
  }

 private:
  std::vector<pollfd> pollfds_;
};

class PollModel final : public IServerModel {
 public:
  static void declare_options(po::options_description&) {}
  explicit PollModel(const po::variables_map&) {}

  int run(const ServerContext& ctx) noexcept override {
    try {
      PollSet pollset;
      return run_rebuilt_interest_loop(ctx, "poll", pollset,
                                       [](int /*fd*/, std::size_t /*clients*/) { return true; });
    } catch (const std::exception& e) {  // allocation failure: give up cleanly
      ctx.log->error("poll: {}", e.what());
      return ENOMEM;
    }
  }
};

}  // namespace

ECHOD_PLUGIN(PollModel, "poll",
             "one thread, nonblocking sockets, poll() readiness (no descriptor ceiling)",
             echod::kCapConcurrent | echod::kCapEventDriven)

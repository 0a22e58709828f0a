// select: one thread, nonblocking sockets, readiness from select(). Every wait rebuilds two
// bitmaps and the kernel scans every descriptor up to the highest: O(connections), not
// O(ready). A descriptor >= FD_SETSIZE (1024) cannot be watched at all, so such connections are
// refused. Loses to poll and epoll past a few hundred clients; cannot serve a thousand.
#include <sys/select.h>

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "echod/options.hpp"
#include "echod/rebuilt_interest_loop.hpp"
#include "echod/select_limits.hpp"
#include "echod/server_model.hpp"

namespace {

using namespace echod;
namespace po = boost::program_options;

struct Options {
  // FD_SETSIZE less room for stdio, stop_fd, the listeners and the acceptors' spare descriptors.
  int max_clients = FD_SETSIZE - 16;
};

// Two bitmaps indexed by descriptor, refilled before every select(); a descriptor is its own
// slot. Owned by the loop thread.
class SelectSet {
 public:
  void clear() {
    FD_ZERO(&read_set_);
    FD_ZERO(&write_set_);
    max_fd_ = -1;
  }
  int arm(int fd, bool read, bool write) {
    if (read) FD_SET(fd, &read_set_);
    if (write) FD_SET(fd, &write_set_);
    if (read || write) max_fd_ = std::max(max_fd_, fd);
    return fd;
  }
  int wait(int timeout_ms) {
    timeval timeout{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    return ::select(max_fd_ + 1, &read_set_, &write_set_, nullptr,
                    timeout_ms < 0 ? nullptr : &timeout);
  }
  [[nodiscard]] Readiness readiness(int slot) const {
    return {FD_ISSET(slot, &read_set_) != 0, FD_ISSET(slot, &write_set_) != 0};
  }

 private:
  fd_set read_set_{};
  fd_set write_set_{};
  int max_fd_ = -1;
};

class SelectModel final : public IServerModel {
 public:
  static void declare_options(po::options_description& options) {
    const Options defaults;
    // clang-format off
    options.add_options()
        ("select.max-clients", bounded(1, FD_SETSIZE)->default_value(defaults.max_clients),
         "clients served at once (1-FD_SETSIZE); later connections are closed on accept");
    // clang-format on
  }

  explicit SelectModel(const po::variables_map& settings)
      : options_{settings["select.max-clients"].as<int>()},
        admission_(static_cast<std::size_t>(options_.max_clients), "select.max-clients") {}

  int run(const ServerContext& ctx) noexcept override {
    try {
      std::vector<int> fixed_fds(ctx.listen_fds.begin(), ctx.listen_fds.end());
      fixed_fds.insert(fixed_fds.end(), {ctx.stop_fd, ctx.drain_fd});
      if (const int error = check_fd_set_room(fixed_fds, "select", *ctx.log)) return error;
      SelectSet bitmaps;
      // Only connections select() can watch and select.max-clients allows are kept.
      return run_rebuilt_interest_loop(ctx, "select", bitmaps, [&](int fd, std::size_t clients) {
        return admission_.admit(fd, clients, *ctx.log);
      });
    } catch (const std::exception& e) {  // allocation failure: give up cleanly
      ctx.log->error("select: {}", e.what());
      return ENOMEM;
    }
  }

 private:
  Options options_;
  SelectAdmission admission_;  // FD_SETSIZE and select.max-clients
};

}  // namespace

ECHOD_PLUGIN(SelectModel, "select",
             "one thread, nonblocking sockets, select() readiness (descriptors < FD_SETSIZE)",
             echod::kCapConcurrent)

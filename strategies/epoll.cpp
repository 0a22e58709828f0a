// epoll: one thread, nonblocking sockets, readiness from epoll. Each wakeup costs O(ready
// descriptors), not O(connections), so tens of thousands of mostly idle clients are cheap.
// Level-triggered by default; epoll.edge-triggered=true reads each socket until its queue is
// empty (within a budget) instead. Loses when per-message work is heavy: everything runs on one
// core.
//
// The loop itself is the SDK's (echod/epoll_loop.hpp): model reuseport runs the same loop once
// per worker, each on its own SO_REUSEPORT listener.
#include "echod/epoll_loop.hpp"
#include "echod/server_model.hpp"

namespace {

using namespace echod;
namespace po = boost::program_options;

class EpollModel final : public IServerModel {
 public:
  static void declare_options(po::options_description& options) {
    declare_epoll_loop_options(options, "epoll");
  }

  explicit EpollModel(const po::variables_map& settings)
      : options_(read_epoll_loop_options(settings, "epoll")) {}

  int run(const ServerContext& ctx) noexcept override { return run_epoll_loop(ctx, options_); }

 private:
  EpollLoopOptions options_;
};

}  // namespace

ECHOD_PLUGIN(EpollModel, "epoll",
             "one thread, nonblocking sockets, epoll readiness (level- or edge-triggered)",
             echod::kCapConcurrent | echod::kCapEventDriven)

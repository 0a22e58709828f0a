// fork: one child process per connection, each running the blocking echo loop; the parent only
// accepts, forks and reaps. A crashing connection takes down nothing but itself, paid for with
// a fork() per connection and a process per client: loses to the event loops at high connection
// rates or thousands of clients. At fork.max-children children it stops accepting; new clients
// wait in the listen backlog.
#include <poll.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "echod/acceptor.hpp"
#include "echod/backlog_burst.hpp"
#include "echod/blocking_echo.hpp"
#include "echod/options.hpp"
#include "echod/process.hpp"
#include "echod/server_model.hpp"
#include "echod/stop.hpp"

namespace {

using namespace echod;
namespace po = boost::program_options;

struct Options {
  int max_children = 1024;
  int child_nice = 19;  // how much nicer children are than the accepting parent (see models.md)
};

// How long children get to close their connection after a stop before they are SIGKILLed.
constexpr std::chrono::milliseconds kChildStopGrace{1000};

// A child's exit status says how its connection ended: the parent holds the connection's place
// under the caps and, when it releases it, counts an I/O error in the endpoint's errors.
constexpr int kChildDone = 0;      // EOF, idle timeout or stop
constexpr int kChildFailed = 1;    // an unexpected error (the child warned), or an exception
constexpr int kChildPeerGone = 2;  // reset, broken pipe, ...: an error, but no warning

class ForkModel final : public IServerModel {
 public:
  static void declare_options(po::options_description& options) {
    const Options defaults;
    // clang-format off
    options.add_options()
        ("fork.max-children", bounded(1, 65536)->default_value(defaults.max_children),
         "clients served at once, one child process each (1-65536); more wait in the listen "
         "backlog")
        ("fork.child-nice", bounded(0, 19)->default_value(defaults.child_nice),
         "niceness added to each child (0-19), so that the accepting parent runs first when "
         "many clients keep the core busy; 0 = all equal");
    // clang-format on
  }

  explicit ForkModel(const po::variables_map& settings)
      : options_{settings["fork.max-children"].as<int>(), settings["fork.child-nice"].as<int>()} {}

  int run(const ServerContext& ctx) noexcept override {
    try {
      return serve(ctx);
    } catch (const std::system_error& e) {  // signal set-up failed
      ctx.log->error("fork: {}", e.what());
      return e.code().value();
    } catch (const std::exception& e) {  // allocation failed
      ctx.log->error("fork: {}", e.what());
      return ENOMEM;
    }
  }

 private:
  int serve(const ServerContext& ctx) {
    ChildProcesses children(ctx.log);
    Acceptor acceptor(ctx.listen_fds.front(), ctx);
    for (;;) {
      // At the cap the listener is watched only until a client is seen waiting (logged once),
      // then left out (poll ignores fd -1): clients queue in the backlog until a child exits.
      const bool watch = children.count() < max_children() || !burst_.active();
      pollfd pfds[3] = {{ctx.drain_fd, POLLIN, 0},
                        {children.exit_fd(), POLLIN, 0},
                        {watch ? acceptor.listen_fd() : -1, POLLIN, 0}};
      if (::poll(pfds, 3, -1) < 0) {
        if (errno == EINTR) continue;
        ctx.log->error("poll: {}", std::strerror(errno));
        if (!sleep_unless_stopped(ctx.drain_fd, kAcceptBackoffMs)) break;
        continue;
      }
      if (pfds[0].revents != 0) break;
      if (pfds[1].revents != 0) reap(children, ctx);
      const bool full = children.count() >= max_children();
      // During a burst a freed slot tries the backlog at once, to learn whether it is empty.
      if (pfds[2].revents == 0 && (full || !burst_.active())) continue;
      if (full) {
        burst_.at_cap(max_children(), *ctx.log);
      } else if (!accept_ready(acceptor, children, ctx) && !acceptor.closed() &&
                 !sleep_unless_stopped(ctx.drain_fd, kAcceptBackoffMs)) {
        break;
      }
    }
    // Draining: each child serves its client to the end; a stop reaches them through stop_fd,
    // and they finish their connection and exit.
    while (children.count() > 0) {
      pollfd pfds[2] = {{ctx.stop_fd, POLLIN, 0}, {children.exit_fd(), POLLIN, 0}};
      if (::poll(pfds, 2, -1) < 0 && errno != EINTR) break;
      if (pfds[0].revents != 0) break;
      if (pfds[1].revents != 0) reap(children, ctx);
    }
    children.stop_all(std::max(kChildStopGrace, ctx.endpoint->finish_grace()));
    admissions_.clear();
    return 0;
  }

  // Takes pending connections while below the cap, a child for each, forked before the next
  // accept: a child must inherit no other client's socket (it would hold that connection open
  // after its own child closed it), and fork() copies the whole descriptor table, so a backlog
  // accepted first would also make every fork slower. The parent's copy of each connection
  // closes at once; its place under the caps is kept until the child is reaped. False when out
  // of descriptors or processes: back off.
  bool accept_ready(Acceptor& acceptor, ChildProcesses& children, const ServerContext& ctx) {
    while (children.count() < max_children()) {
      auto [status, connection] = burst_.accept(acceptor, *ctx.log);
      if (status == Acceptor::Status::kWouldBlock) return true;
      if (status != Acceptor::Status::kAccepted) return false;
      const int fd = connection.fd();
      const pid_t pid = children.spawn(
          [&] { return serve_child(std::move(connection.socket), ctx, options_.child_nice); });
      if (pid < 0) {
        ctx.log->warn("fork: {}; closing the new connection", std::strerror(errno));
        return false;
      }
      admissions_.emplace(pid, std::move(connection.admission));
      ctx.log->debug("fd {}: accepted, child {}", fd, pid);
    }
    return true;
  }

  // Child body: echo this one connection until the peer leaves or a stop. Its place under the
  // caps is the parent's to release.
  static int serve_child(Fd connection, const ServerContext& ctx, int nice) {
    for (int fd : ctx.listen_fds)
      ::close(fd);  // the child's copies: it never accepts, and must not keep the port open
    lower_own_priority(nice);
    switch (serve_blocking({std::move(connection), {}}, ctx)) {
      case ServeEnd::kFailed:
        return kChildFailed;
      case ServeEnd::kPeerGone:
        return kChildPeerGone;
      default:
        return kChildDone;
    }
  }

  void reap(ChildProcesses& children, const ServerContext& ctx) {
    for (const auto& exit : children.reap()) {
      const int code = WIFEXITED(exit.status) ? WEXITSTATUS(exit.status) : -1;
      if (const auto it = admissions_.find(exit.pid); it != admissions_.end()) {
        if (code == kChildFailed || code == kChildPeerGone) it->second.mark_failed();
        admissions_.erase(it);
      }
      const bool clean = code == kChildDone || code == kChildPeerGone;
      ctx.log->log(clean ? spdlog::level::debug : spdlog::level::warn, "child {} {}", exit.pid,
                   describe_exit(exit.status));
    }
  }

  [[nodiscard]] std::size_t max_children() const {
    return static_cast<std::size_t>(options_.max_children);
  }

  Options options_;
  BacklogBurst burst_{"children", "fork.max-children"};
  std::unordered_map<pid_t, Admission> admissions_;  // each child's place under the caps
};

}  // namespace

ECHOD_PLUGIN(ForkModel, "fork",
             "blocking, one child process per connection (capped by fork.max-children)",
             echod::kCapConcurrent | echod::kCapForks)

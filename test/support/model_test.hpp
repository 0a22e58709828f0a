// Helpers for tests of one model's own promises (test/models/): echod started with a model's
// options, waiting with a deadline until a condition holds, clients that are served at once or
// left waiting, the worker processes of a model that forks, and option validation.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "outcome.hpp"
#include "process_info.hpp"
#include "test_client.hpp"

namespace echod::test {

// Polls `done` every `poll` until it holds; false if it still does not after `timeout`.
[[nodiscard]] bool eventually(const std::function<bool()>& done, Millis timeout = kDefaultTimeout,
                              Millis poll = Millis{10});

// Waits until process `pid` has `count` threads; otherwise says how many it has.
[[nodiscard]] Outcome wait_for_thread_count(pid_t pid, int count, Millis timeout = kDefaultTimeout);

// Arguments for EchodProcess: "--model MODEL", then "--MODEL.OPTION" for each of
// `model_options` ("workers=3" gives "--prefork.workers=3"), then `other_args` as given.
[[nodiscard]] std::vector<std::string> model_args(const std::string& model,
                                                  const std::vector<std::string>& model_options,
                                                  const std::vector<std::string>& other_args = {});

// Connects `count` clients and REQUIREs each to be echoed ("client I"), so each is being
// served (has its process or thread) when this returns. Test thread only.
[[nodiscard]] std::vector<TestClient> connect_served(std::uint16_t port, int count);

// Connects `count` clients at once, then echoes on each in turn for `rounds` rounds, newest
// first: a server that took one client at a time would still be busy with the oldest. REQUIREs
// every echo; returns the clients, still connected. Test thread only.
std::vector<TestClient> echo_concurrently(std::uint16_t port, int count, int rounds = 3);

// A client past what the server serves at once: connects (the kernel completes the handshake
// and queues it) and sends `message`; REQUIREs both. Test thread only.
[[nodiscard]] TestClient connect_waiting(std::uint16_t port, std::string_view message = "waiting");

// Succeeds if `client` does not get `size` bytes back within `wait`: nobody serves it.
[[nodiscard]] Outcome not_served_within(TestClient& client, std::size_t size,
                                        Millis wait = Millis{500});

// Receives exactly the bytes of `expected` (e.g. the echo of what a waiting client sent).
[[nodiscard]] Outcome receives(TestClient& client, std::string_view expected,
                               Millis timeout = kDefaultTimeout);

// The descendants of `pid` that still exist, zombies included, named so that pid reuse does not
// fool a later is_running().
[[nodiscard]] std::vector<ProcessIdentity> descendant_identities(pid_t pid);
// Those of them that run (no zombie): the worker processes of a model that forks.
[[nodiscard]] std::vector<ProcessIdentity> running_descendants(pid_t pid);
// True if both name the same process: the same pid started at the same time.
[[nodiscard]] bool same_process(const ProcessIdentity& a, const ProcessIdentity& b);

// Sends `chunk` over and over without reading until the socket has taken nothing for `quiet`
// (the peer stopped reading and every buffer on the way is full) or `cap` bytes went out.
// Returns the bytes sent; stops early on a send error. Safe on any thread.
[[nodiscard]] std::size_t push_until_blocked(TestClient& client, const std::string& chunk,
                                             Millis quiet, std::size_t cap);

// `count` small random messages (1..1000 bytes from `rng`) echoed one at a time, each back
// within `each`. Safe on any thread.
[[nodiscard]] Outcome ping_pongs(TestClient& client, Rng& rng, int count,
                                 Millis each = Millis{2000});

// Runs `echod --model MODEL --port 0 ARGUMENT`; succeeds if echod refuses to start: exit
// status 2 (bad settings) and `message` in its stderr.
[[nodiscard]] Outcome option_rejected(const std::string& model, const std::string& argument,
                                      std::string_view message);

}  // namespace echod::test

// Test support for black-box tests of echod: include this one header.
//
//   outcome.hpp       Outcome/Received (failures in words), same_bytes, Rng, random_bytes
//   echod_process.hpp EchodProcess (echod as a child: port, log, signals, exit status),
//                     run_echod (run to completion), describe_model (capabilities),
//                     stop_summary (the counters of the summary line at stop)
//   test_client.hpp   TestClient: connect/send/receive/echo/half-close/reset, all with timeouts
//   process_info.hpp  /proc views: descendant_pids, memory_kib, rss_kib, thread_count,
//                     open_fd_count, process_state, identify/is_running, tree_cpu_ticks,
//                     pids_holding_connection (which worker holds a client's connection)
//   model_suite.hpp   suites registered once per model (conformance, endpoint, hostile, soak):
//                     run_model_suite, suite_target, has_capability,
//                     start_echod[_with_descriptor_limit]
//   model_test.hpp    for test/models: eventually, wait_for_thread_count, model_args,
//                     connect_served/echo_concurrently/connect_waiting, running_descendants,
//                     option_rejected, push_until_blocked, ping_pongs
//
// Everything lives in namespace echod::test.
#pragma once

#include "echod_process.hpp"
#include "model_suite.hpp"
#include "model_test.hpp"
#include "outcome.hpp"
#include "process_info.hpp"
#include "test_client.hpp"

#!/usr/bin/env bash
# Installs everything echod needs to build, test and benchmark on Debian 12: the sweep
# (client/sweep) draws with python3-matplotlib, its Go peer needs golang-go, and the test that
# opens its report.html runs headless chromium.
set -euo pipefail
packages=(
  build-essential cmake pkg-config
  libboost-dev libboost-program-options-dev libspdlog-dev libfmt-dev catch2 liburing-dev
  nlohmann-json3-dev
  prometheus-cpp-dev  # --metrics (prometheus-cpp core and pull)
  libsystemd-dev systemd  # socket activation, sd_notify; systemd-socket-activate for the tests
  netcat-openbsd socat python3 procps util-linux
  python3-matplotlib golang-go chromium
  clang libclang-rt-14-dev  # libFuzzer for test/fuzz (.ci/run builds the targets with clang)
  haproxy iproute2  # the fleet (client/fleet, ctest -L fleet): a balancer, ip netns
)
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

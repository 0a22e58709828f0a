#!/usr/bin/env bash
# Installs everything echod needs to build, test and benchmark on Debian 12: the sweep
# (client/sweep) draws with python3-matplotlib, its Go peer needs golang-go, and the test that
# opens its report.html runs headless chromium.
#   ./install-deps.sh               everything: build, tests, benchmarks, fuzzing, fleet, container
#   ./install-deps.sh --build-only  just what building echod, its models and echo-bench needs
#                                   (the container's build stage, conf/container/Containerfile)
set -euo pipefail
build_packages=(
  build-essential cmake pkg-config
  libboost-dev libboost-program-options-dev libspdlog-dev libfmt-dev liburing-dev
  nlohmann-json3-dev
  prometheus-cpp-dev  # --metrics (prometheus-cpp core and pull)
  libsystemd-dev  # socket activation, sd_notify
)
packages=("${build_packages[@]}"
  catch2
  systemd  # systemd-socket-activate for the tests
  netcat-openbsd socat python3 procps util-linux
  python3-matplotlib golang-go chromium
  clang libclang-rt-14-dev  # libFuzzer for test/fuzz (.ci/run builds the targets with clang)
  haproxy iproute2  # the fleet (client/fleet, ctest -L fleet): a balancer, ip netns
  podman runc debootstrap  # the container test (test/container, ctest -L container)
)
apt_flags=()
case "${1:-}" in
  "") ;;
  --build-only) packages=("${build_packages[@]}") apt_flags=(--no-install-recommends) ;;
  *) echo "usage: $0 [--build-only]" >&2; exit 2 ;;
esac
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${apt_flags[@]}" "${missing[@]}"
fi

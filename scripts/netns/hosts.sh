#!/usr/bin/env bash
# hosts.sh up [N] | down | exec I CMD... | list
#
# N fake LAN hosts on one machine (needs root and iproute2): network
# namespaces $P-1..$P-N, each with eth0 = $NET.I/24, all plugged into a
# bridge that lives in its own namespace $P-sw. Nothing is routed off the
# machine and the root namespace is not attached: the hosts reach only each
# other. Subnet broadcast ($NET.255) and 255.255.255.255 reach every host.
#
#   NETNS_PREFIX  namespace name prefix (default brainy-ns); make it unique
#                 per run (tests use brainy-mt-<pid>) so parallel runs
#                 never touch each other's namespaces
#   NETNS_NET     first three octets of the /24 (default 10.77.0); it exists
#                 only inside these namespaces, so runs may share it
#
# `up` is idempotent: it tears down any namespaces of the same prefix first.
# `down` removes them all; stop the processes running in them first.
set -euo pipefail
P=${NETNS_PREFIX:-brainy-ns}
NET=${NETNS_NET:-10.77.0}

usage() { echo "usage: $0 up [N] | down | exec I CMD... | list" >&2; exit 2; }

# Only names of exactly this prefix: brainy-mt-1 must not match brainy-mt-12-1.
ours() {
  ip netns list | awk '{print $1}' | grep -E "^${P//./\\.}-(sw|[0-9]+)$" || true
}

down() {
  local ns
  for ns in $(ours); do
    ip netns delete "$ns"
  done
}

up() {
  local n=$1 i
  [[ $n =~ ^[0-9]+$ && $n -ge 1 && $n -le 250 ]] || { echo "N must be 1..250" >&2; exit 2; }
  down
  ip netns add "$P-sw"
  ip -n "$P-sw" link set lo up
  ip -n "$P-sw" link add br0 type bridge
  ip -n "$P-sw" link set br0 up
  for i in $(seq 1 "$n"); do
    ip netns add "$P-$i"
    # Interface names are per namespace, so these short names cannot clash
    # with another run's.
    ip -n "$P-sw" link add "h$i" type veth peer name eth0 netns "$P-$i"
    ip -n "$P-sw" link set "h$i" master br0 up
    ip -n "$P-$i" link set lo up
    ip -n "$P-$i" addr add "$NET.$i/24" broadcast + dev eth0
    ip -n "$P-$i" link set eth0 up
    # No default route on purpose; this makes 255.255.255.255 sendable.
    ip -n "$P-$i" route add broadcast 255.255.255.255 dev eth0 table local
  done
  for i in $(seq 1 "$n"); do
    echo "$P-$i $NET.$i"
  done
}

case ${1:-} in
  up) up "${2:-3}" ;;
  down) down ;;
  exec) [[ $# -ge 3 ]] || usage; i=$2; shift 2; exec ip netns exec "$P-$i" "$@" ;;
  list) ours ;;
  *) usage ;;
esac

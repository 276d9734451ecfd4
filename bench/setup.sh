#!/usr/bin/env bash
# Installs what `make bench` compares against: rsyslog from Debian (its own system service is
# not used; the benchmark runs a private instance on a loopback port). Needs root.
set -euo pipefail
if ! command -v rsyslogd >/dev/null 2>&1 && [ ! -x /usr/sbin/rsyslogd ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsyslog >/dev/null
fi

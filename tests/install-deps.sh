#!/usr/bin/env bash
# What the test suite needs beyond Rust, installed idempotently (quiet when present):
# tmux and openssl for the UI and demo tests, man (man-db, with groff) for the manual page test
# (tests/tour.rs renders `cutover man` with `man -l`), asciinema to play `journal export`'s
# recordings (tests/export.rs), and the lab's packages and Keystone venv.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: run as root (it installs Debian packages and a venv under /opt)" >&2
  exit 1
fi
need=()
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v asciinema >/dev/null 2>&1 || need+=(asciinema)
command -v script >/dev/null 2>&1 || need+=(bsdutils)
# A minimised image may have no man, or a stub in its place: ask it to render a page.
printf '.TH T 1\n.SH NAME\nt\n' | MANPAGER=cat man -l - >/dev/null 2>&1 || need+=(man-db groff-base)
if [ ${#need[@]} -gt 0 ]; then
  echo "install-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
tests/lab/install.sh

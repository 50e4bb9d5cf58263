# shellcheck shell=bash
# Shared by scripts/setup and scripts/stack. Sourced, never run.

# shellcheck disable=SC2034 # used by the scripts that source this file
MKF_REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Outside the clone: a fresh clone or `git clean` must not cost another jar download.
MKF_CACHE_DIR="${MKF_CACHE_DIR:-${HOME:-/root}/.cache/mqtt-kafka-forwarder}"

mkf_die() {
  echo "$*" >&2
  exit 1
}

# Root on the project's machines; a developer's own machine may need sudo.
mkf_as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    mkf_die "need root or sudo to run: $*"
  fi
}

# Major version of a java binary (8 for "1.8.0_x", 17 for "17.0.15"), empty if it does not run.
mkf_java_major() {
  local line
  line="$("$1" -version 2>&1 | grep -m1 -E 'version "' || true)"
  line="${line#*version \"}"
  line="${line%%\"*}"
  [ -n "$line" ] || return 0
  if [ "${line%%.*}" = 1 ]; then
    line="${line#1.}"
  fi
  echo "${line%%[.+-]*}"
}

# A Java >= 17 for Kafka 3.9: JAVA_HOME, then PATH, then Debian's JRE 17 (which may be
# installed while the `java` alternative still points at an older one).
mkf_find_java() {
  local candidate major
  for candidate in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} "$(command -v java 2>/dev/null || true)" \
    /usr/lib/jvm/java-17-openjdk-*/bin/java /usr/lib/jvm/java-*-openjdk-*/bin/java; do
    if [ -z "$candidate" ] || [ ! -x "$candidate" ]; then continue; fi
    major="$(mkf_java_major "$candidate")"
    if [ -n "$major" ] && [ "$major" -ge 17 ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# shellcheck shell=bash
# Fetches the Kafka broker's jars from Maven into the cache. Sourced by scripts/setup and by
# scripts/stack (whose `up` fetches them when setup was never run). Needs common.sh first.

MKF_KAFKA_POM="$MKF_REPO_DIR/scripts/kafka/pom.xml"
# The pom is the single place the version is pinned.
MKF_KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$MKF_KAFKA_POM" | head -n1)"
MKF_KAFKA_HOME="$MKF_CACHE_DIR/kafka-$MKF_KAFKA_VERSION"
MKF_KAFKA_LIBS="$MKF_KAFKA_HOME/libs"
MKF_KAFKA_STAMP="$MKF_KAFKA_HOME/.fetched"

mkf_kafka_jars_fresh() {
  # The stamp holds the pom's hash: editing the pom (another binding, another version of a
  # dependency) must fetch again, an unchanged pom must not even start Maven.
  [ -d "$MKF_KAFKA_LIBS" ] && [ -f "$MKF_KAFKA_STAMP" ] &&
    [ "$(cat "$MKF_KAFKA_STAMP")" = "$(sha256sum "$MKF_KAFKA_POM" | cut -d' ' -f1)" ]
}

mkf_fetch_kafka_jars() {
  if mkf_kafka_jars_fresh; then
    echo "setup: kafka $MKF_KAFKA_VERSION jars ok (cached in $MKF_KAFKA_LIBS)"
    return 0
  fi
  mkdir -p "$MKF_KAFKA_HOME"
  # The cache is shared by every clone and by a setup and a stack run at the same time:
  # one fetch at a time, and whoever waited re-checks before fetching again.
  (
    exec 9>"$MKF_KAFKA_HOME/.lock"
    flock 9
    if mkf_kafka_jars_fresh; then
      echo "setup: kafka $MKF_KAFKA_VERSION jars ok (fetched by another run)"
      exit 0
    fi
    mkf_fetch_kafka_jars_locked
  ) || exit 1
}

mkf_fetch_kafka_jars_locked() {
  command -v mvn >/dev/null 2>&1 || mkf_die "setup: mvn not found; run scripts/setup"
  local java work
  java="$(mkf_find_java)" || mkf_die "setup: no Java >= 17 found; run scripts/setup"
  # Fetch into a scratch folder and rename at the end: an interrupted fetch (Ctrl-C, network)
  # must never leave a half-filled libs/ that a later run would take as complete.
  work="$(mktemp -d "$MKF_KAFKA_HOME/fetch.XXXXXX")"
  cp "$MKF_KAFKA_POM" "$work/pom.xml"
  echo "setup: fetching kafka $MKF_KAFKA_VERSION jars with maven (first run only)..."
  # -q keeps Maven to errors; -B/-ntp: no progress bars in CI logs. Debian's Maven 3.8 still
  # writes colour resets even then, so its output is kept and shown (cleaned) only on failure.
  local out
  if ! out="$(JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$java")")")" \
    mvn -q -B -ntp -f "$work/pom.xml" dependency:copy-dependencies "-Dlibs.dir=$work/libs" 2>&1)"; then
    printf '%s\n' "$out" | sed 's/\x1b\[[0-9;]*m//g' >&2
    rm -rf "$work"
    mkf_die "setup: maven could not fetch the kafka jars (errors above)"
  fi
  if [ ! -f "$work/libs/kafka_2.13-$MKF_KAFKA_VERSION.jar" ]; then
    rm -rf "$work"
    mkf_die "setup: maven ran but kafka_2.13-$MKF_KAFKA_VERSION.jar is missing"
  fi
  rm -rf "$MKF_KAFKA_LIBS"
  mv "$work/libs" "$MKF_KAFKA_LIBS"
  rm -rf "$work"
  sha256sum "$MKF_KAFKA_POM" | cut -d' ' -f1 >"$MKF_KAFKA_STAMP"
  echo "setup: kafka $MKF_KAFKA_VERSION jars ok ($(find "$MKF_KAFKA_LIBS" -name '*.jar' | wc -l) jars in $MKF_KAFKA_LIBS)"
}

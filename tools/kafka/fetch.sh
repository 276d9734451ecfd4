#!/bin/sh
# Resolve the Kafka broker's jars (pom.xml beside this script) into .tools/kafka/lib, with the
# Maven local repository under .tools too, so a fresh clone needs only java and mvn.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
[ -f "$root/.tools/kafka/lib/.complete" ] && exit 0
mvn -q -B -f "$root/tools/kafka/pom.xml" -Dmaven.repo.local="$root/.tools/kafka/m2" \
    dependency:copy-dependencies -DoutputDirectory="$root/.tools/kafka/lib"
touch "$root/.tools/kafka/lib/.complete"

# Starts the workload in the background in its own session; a set
# $NS_LAST_PID pins its pid to the next one (the dumped tree keeps its pids
# on restore, so each dump gets a range). Nothing may fork between that
# write and the workload's start.
mkdir -p "$D" "$OUT" && cd "$D" || exit "$RC_SETUP"
eval "set -- $WORKLOAD_ENV setsid \"\$PROG\" $ARGS"
if [ -n "$NS_LAST_PID" ]; then echo "$NS_LAST_PID" >/proc/sys/kernel/ns_last_pid || exit "$RC_SETUP"; fi
env -i PATH=/usr/bin:/bin CRTEST_STEP_MS="$STEP_MS" "$@" </dev/null >"$STDOUT" 2>"/run/crtest/$ID.stdout" &
echo $! >"$OUT/pid"

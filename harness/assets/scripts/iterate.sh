# One more C/R iteration in place (like zdtm's `--iters`): $APART steps
# after where the restored workload is now, dump it again and restore it on
# the same kernel, recording both states. Exits NO_ROOM when the workload
# is too near its last step ($LAST) for another round.
PID=$(cat "/run/crtest/$DIR_ID.root" 2>/dev/null || echo "$PID")
mkdir -p "$OUT"
AFTER=$(( $(grep -c "$PAT" "$T") + APART ))
[ $AFTER -le "$LAST" ] && alive "$PID" || exit "$RC_NO_ROOM"
wait_steps "$AFTER"
criu_dump
criu_restore "/tmp/img-$ID"

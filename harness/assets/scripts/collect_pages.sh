# Waits for the page server of this op to end (the dump closed its
# connection) and moves what it received to $OUT/ps.
P=$(cat "/tmp/ps-$ID.pid" 2>/dev/null); n=0
while [ -n "$P" ] && alive "$P"; do
    tick "the page server did not end within ${TIMEOUT}s" "$RC_FINISH_TIMEOUT"
done
cp "/tmp/ps-$ID.log" "$OUT/page-server.log" 2>/dev/null
cp -a "/tmp/ps-$ID" "$OUT/ps" && rm -rf "/tmp/ps-$ID" || exit "$RC_COPY_FAILED"

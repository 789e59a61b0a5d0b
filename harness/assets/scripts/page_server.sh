# Starts `criu page-server` on $ADDR:$PORT, detached, writing what it
# receives into /tmp/ps-$ID (mode `page-server`, on the target).
mkdir -p "$OUT" "/tmp/ps-$ID" || exit "$RC_SETUP"
criu page-server -D "/tmp/ps-$ID" --address "$ADDR" --port "$PORT" -d --pidfile "/tmp/ps-$ID.pid" -o "/tmp/ps-$ID.log" -v4
rc=$?
cp "/tmp/ps-$ID.log" "$OUT/page-server.log" 2>/dev/null
[ $rc = 0 ] || exit "$RC_DUMP_FAILED"

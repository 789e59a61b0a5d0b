# Waits for the lazy dump of this op to end (every page served) and
# reports how it ended, with its whole log.
n=0
while [ ! -f "/tmp/rc-$ID" ]; do
    tick "the lazy dump still served pages after ${TIMEOUT}s" "$RC_FINISH_TIMEOUT"
done
cp "/tmp/img-$ID/dump.log" "$OUT/dump.log"; rc=$(cat "/tmp/rc-$ID"); rm -rf "/tmp/img-$ID" "/tmp/st-$ID" "/tmp/rc-$ID"
[ "$rc" = 0 ] || { dmesg | tail -n 30 >"$OUT/dmesg"; exit "$RC_DUMP_FAILED"; }

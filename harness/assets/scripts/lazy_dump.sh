# Dumps the workload with `--lazy-pages` (mode `lazy`, on the source): the
# dump leaves its images without memory and then serves the pages on
# $ADDR:$PORT until the restored tree has them all, in the background. The
# script returns once the images are there (CRIU's `--status-fd`).
PID=$(cat "$OUT/pid")
wait_steps "$AFTER"
dump_root
eval "set -- $DUMP_OPTS"
mkdir -p "/tmp/img-$ID"
snap_hook before.snap
( criu dump -t "$PID" -D "/tmp/img-$ID" -o dump.log -v4 --action-script "/tmp/snap-$ID.sh" --lazy-pages --address "$ADDR" --port "$PORT" --status-fd 3 "$@" 3>"/tmp/st-$ID"; echo $? >"/tmp/rc-$ID" ) </dev/null >/dev/null 2>&1 &
n=0
while [ ! -s "/tmp/st-$ID" ]; do
    [ -f "/tmp/rc-$ID" ] && { cp "/tmp/img-$ID/dump.log" "$OUT/dump.log"; dmesg | tail -n 30 >"$OUT/dmesg"; exit "$RC_DUMP_FAILED"; }
    tick "the lazy dump did not start serving pages within ${TIMEOUT}s" "$RC_DUMP_POINT_TIMEOUT"
done
cp -a "/tmp/img-$ID" "$OUT/img" && rm -f "$OUT/img/dump.log" && files_tar || exit "$RC_COPY_FAILED"

# Like restore.sh, restoring with `--lazy-pages`: a `criu lazy-pages`
# daemon fetches the memory from the source's dump at $ADDR:$PORT as the
# restored tree touches it (mode `lazy`).
mkdir -p "$OUT" "/tmp/work-$ID" && cd / && tar -xf "$IN/files.tar" || exit "$RC_COPY_FAILED"
criu lazy-pages --page-server --address "$ADDR" --port "$PORT" -D "$IN/img" -W "/tmp/work-$ID" -o "/tmp/lazy-$ID.log" -v4 </dev/null >/dev/null 2>&1 &
n=0
while [ ! -S "/tmp/work-$ID/lazy-pages.socket" ]; do
    n=$((n + 1)); [ $n -gt 300 ] && { cp "/tmp/lazy-$ID.log" "$OUT/lazy-pages.log"; echo "criu lazy-pages did not start"; exit "$RC_RESTORE_FAILED"; }
    sleep 0.1
done
criu_restore "$IN/img" --lazy-pages
cp "/tmp/lazy-$ID.log" "$OUT/lazy-pages.log" 2>/dev/null

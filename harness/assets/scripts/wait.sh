# Waits for the workload (process $PID, or the restored root) to finish,
# then copies its transcript and stdout (and a lazy restore's daemon log)
# to the share.
PID=$(cat "/run/crtest/$DIR_ID.root" 2>/dev/null || echo "$PID")
mkdir -p "$OUT"
n=0; code=0
while ! finished; do
    if ! alive $PID; then sleep 0.2; finished && break; code=$RC_DIED; break; fi
    n=$((n + 1)); [ $n -gt $((TIMEOUT * 10)) ] && { code=$RC_FINISH_TIMEOUT; break; }
    sleep 0.1
done
# A finished program's transcript must reach the share, or the host could
# only say later that it is missing; one that died may have written none.
if ! err=$(cp "$T" "$OUT/transcript" 2>&1) && [ $code = 0 ]; then
    echo "copying the transcript to the share failed: $err"
    code=$RC_COPY_FAILED
fi
cp "/run/crtest/$DIR_ID.stdout" "$OUT/stdout" 2>/dev/null
cp "/tmp/lazy-$ID.log" "$OUT/lazy-pages.log" 2>/dev/null
[ $code = "$RC_DIED" ] && dmesg | tail -n 30 >"$OUT/dmesg"
exit $code

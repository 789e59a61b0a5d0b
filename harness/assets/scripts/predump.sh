# Like dump.sh, with a `criu pre-dump` round (memory tracking, each the
# parent of the next) at each of $PREDUMP_STEPS while the workload runs,
# then the final dump of what changed since the last. Pre-dump dirs land
# in $OUT/pre/N and the final dump in $OUT/img, without their `parent`
# links (the host links the converted dirs again).
PID=$(cat "$OUT/pid")
r=0
for step in $PREDUMP_STEPS; do
    r=$((r + 1))
    wait_steps "$step"
    if [ $r = 1 ]; then dump_root; set --; else set -- --prev-images-dir "../pre$((r - 1))"; fi
    eval "set -- \"\$@\" $DUMP_OPTS"
    mkdir -p "/tmp/img-$ID/pre$r"
    criu pre-dump -t "$PID" -D "/tmp/img-$ID/pre$r" -o pre-dump.log -v4 --track-mem "$@"
    rc=$?
    cp "/tmp/img-$ID/pre$r/pre-dump.log" "$OUT/pre-dump$r.log"
    [ $rc = 0 ] || { cp "$OUT/pre-dump$r.log" "$OUT/dump.log"; dmesg | tail -n 30 >"$OUT/dmesg"; exit "$RC_DUMP_FAILED"; }
done
wait_steps "$AFTER"
alive "$PID" || { echo "the workload ran to its end during the pre-dump rounds"; exit "$RC_EXITED_BEFORE_DUMP"; }
rounds=$r
criu_dump --track-mem --prev-images-dir "pre$rounds"
mkdir -p "$OUT/pre" || exit "$RC_COPY_FAILED"
for r in $(seq 1 "$rounds"); do
    cp -a "/tmp/img-$ID/pre$r" "$OUT/pre/$r" && rm -f "$OUT/pre/$r/parent" && rm -rf "/tmp/img-$ID/pre$r" || exit "$RC_COPY_FAILED"
done
rm -f "/tmp/img-$ID/parent"
cp -a "/tmp/img-$ID" "$OUT/img" && files_tar || exit "$RC_COPY_FAILED"
rm -rf "/tmp/img-$ID"

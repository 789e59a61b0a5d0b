# Like dump.sh, sending the pages to the page server at $ADDR:$PORT instead
# of writing them (mode `page-server`).
PID=$(cat "$OUT/pid")
wait_steps "$AFTER"
dump_root
criu_dump --page-server --address "$ADDR" --port "$PORT"
cp -a "/tmp/img-$ID" "$OUT/img" && files_tar || exit "$RC_COPY_FAILED"
rm -rf "/tmp/img-$ID"

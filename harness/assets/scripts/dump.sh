# Waits until $AFTER step lines exist, dumps the tree with CRIU and leaves
# the images and the workload's files in the share.
PID=$(cat "$OUT/pid")
wait_steps "$AFTER"
dump_root
criu_dump
cp -a "/tmp/img-$ID" "$OUT/img" && files_tar || exit "$RC_COPY_FAILED"
rm -rf "/tmp/img-$ID"

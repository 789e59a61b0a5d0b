# Puts the dumped workload's files back at their paths and restores the
# tree detached; its pids are those of the dump ($PID is the root).
mkdir -p "$OUT" && cd / && tar -xf "$IN/files.tar" || exit "$RC_COPY_FAILED"
criu_restore "$IN/img"

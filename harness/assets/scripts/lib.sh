# The functions every guest script shares. A script is its header (shell
# variables, each value quoted by the harness: engine/scripts), this file,
# then its body (NAME.sh beside it). Exit codes come from the header
# (RC_*, engine/exit.rs). A list variable (WORKLOAD_ENV, ARGS, DUMP_OPTS,
# RESTORE_OPTS, FEATURES) holds shell words, each quoted by the harness:
# `eval "set -- $LIST"` turns it back into those words and expands nothing
# else but `"$D"` where an engine option says `{dir}`.
set -u

# Whether process $1 exists and is no zombie.
alive() { [ -d "/proc/$1" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" != Z ]; }

# Every script runs the engine through this function, so the engine's own
# environment (ENV_FILE, validated to hold no blanks or quotes) applies to
# each dump, restore and check, and to nothing else.
criu() { env $(cat /etc/crtest/engine.env 2>/dev/null) /usr/sbin/criu "$@"; }

# Whether the workload in $D (process $PID) is done: a library workload
# writes `done` into its transcript $T, a user's program ends ($ENDS).
finished() {
    case $ENDS in
    exit) ! alive "$PID" ;;
    *) [ -f "$T" ] && [ "$(tail -n 1 "$T")" = done ] ;;
    esac
}

# One tick of 0.1 s of a wait with counter n: past $TIMEOUT seconds it
# says $1 and exits with $2.
tick() {
    n=$((n + 1)); [ $n -gt $((TIMEOUT * 10)) ] && { echo "$1"; exit "$2"; }
    sleep 0.1
}

# Waits until the workload (process $PID) has written $1 step lines
# (lines of $T matching $PAT).
wait_steps() {
    n=0
    while :; do
        c=$(grep -c "$PAT" "$T" 2>/dev/null)
        [ "${c:-0}" -ge "$1" ] && break
        alive "$PID" || { echo "workload exited before step $1"; exit "$RC_EXITED_BEFORE_DUMP"; }
        tick "workload did not reach step $1 in ${TIMEOUT}s" "$RC_DUMP_POINT_TIMEOUT"
    done
}

# Points $PID at the process to dump: the started program, or the one
# whose pid the workload wrote into $D/$DUMP_ROOT (a namespace's init,
# which CRIU must dump from); recorded for the restore.
dump_root() {
    [ -n "$DUMP_ROOT" ] || return 0
    PID=$(cat "$D/$DUMP_ROOT") || { echo "no $DUMP_ROOT"; exit "$RC_SETUP"; }
    echo "$PID" >"$OUT/pid"
}

# Writes the action script /tmp/snap-$ID.sh for CRIU: at `post-dump` and
# `pre-resume` (the tree is frozen, the restorer already gone) it records
# every fd and memory mapping of process $PID and its descendants into
# $OUT/$1, like zdtm does, and the digest of every page CRIU restores from
# its images beside it ($OUT/NAME.mem for NAME.snap, see `memcheck`). The
# action script always succeeds: a helper that fails must not read as a
# failed dump, so it leaves its stderr in NAME.mem.err instead.
snap_hook() {
    cat >"/tmp/snap-$ID.sh" <<'SNAP'
#!/bin/sh
case "$CRTOOLS_SCRIPT_ACTION" in post-dump|pre-resume) ;; *) exit 0 ;; esac
# On restore the root task may have another host pid (a pid namespace's init).
[ -n "${CRTOOLS_INIT_PID:-}" ] && ROOT=$CRTOOLS_INIT_PID
# The tree: $ROOT and its descendants, from every process's parent pid.
for d in /proc/[0-9]*; do echo "${d#/proc/} $(sed 's/.*) //' $d/stat 2>/dev/null | cut -d' ' -f2)"; done >/tmp/ppids.$$
tree=" $ROOT "
while :; do
    more=$(while read -r p pp; do case "$tree" in *" $pp "*) case "$tree" in *" $p "*) ;; *) echo "$p" ;; esac ;; esac; done </tmp/ppids.$$)
    [ -n "$more" ] || break
    tree="$tree$(echo $more) "
done
# Processes are named by their pid in their own pid namespace, and paths
# relative to their own root: a restored namespace's processes get other
# host pids, and its root may show at another host path.
for p in $tree; do
    d=/proc/$p
    n=$(sed -n 's/^NSpid:.*[[:space:]]\([0-9][0-9]*\)$/\1/p' $d/status)
    r=$(readlink $d/root); [ "$r" = / ] && r=
    rel() { case "$1" in "$r"/*) [ -n "$r" ] && echo "${1#"$r"}" && return ;; esac; echo "$1"; }
    for f in $d/fd/*; do echo "${n:-$p} fd ${f##*/} $(rel "$(readlink $f)")"; done
    while read -r range perms off dev ino path; do echo "${n:-$p} map $range $perms $off $(rel "$path")"; done <$d/maps
done >"$SNAPFILE"
"$MEMDIGEST" $tree >"$MEMFILE.tmp" 2>"$MEMFILE.err" && mv "$MEMFILE.tmp" "$MEMFILE"
exit 0
SNAP
    chmod +x "/tmp/snap-$ID.sh"
    export ROOT="$PID" SNAPFILE="$OUT/$1" MEMFILE="$OUT/${1%.snap}.mem" MEMDIGEST
}

# Dumps tree $PID into /tmp/img-$ID with options "$@" then $DUMP_OPTS,
# recording the frozen state into $OUT/before.snap and the log into
# $OUT/dump.log.
criu_dump() {
    eval "set -- \"\$@\" $DUMP_OPTS"
    mkdir -p "/tmp/img-$ID"
    snap_hook before.snap
    criu dump -t "$PID" -D "/tmp/img-$ID" -o dump.log -v4 --action-script "/tmp/snap-$ID.sh" "$@"
    rc=$?
    cp "/tmp/img-$ID/dump.log" "$OUT/dump.log"
    [ $rc = 0 ] || { dmesg | tail -n 30 >"$OUT/dmesg"; exit "$RC_DUMP_FAILED"; }
}

# Restores the image set in $1 (the share, read in place to spare the
# guest's memory, or a local dump) detached, with options "$2"... then
# $RESTORE_OPTS, recording the state just before the tree resumes into
# $OUT/after.snap. The restored root task's host pid goes to
# /run/crtest/$DIR_ID.root: a pid namespace's init comes back with another
# one.
criu_restore() {
    images=$1; shift
    eval "set -- \"\$@\" $RESTORE_OPTS"
    mkdir -p "/tmp/work-$ID"
    snap_hook after.snap
    criu restore -D "$images" -W "/tmp/work-$ID" -d -o restore.log -v4 --action-script "/tmp/snap-$ID.sh" --pidfile "/tmp/work-$ID/root.pid" "$@"
    rc=$?
    cp "/tmp/work-$ID/restore.log" "$OUT/restore.log"; cp "/tmp/work-$ID/root.pid" "/run/crtest/$DIR_ID.root" 2>/dev/null; rm -rf "/tmp/work-$ID" "/tmp/img-$ID"
    [ $rc = 0 ] || { dmesg | tail -n 30 >"$OUT/dmesg"; exit "$RC_RESTORE_FAILED"; }
}

# Archives the workload's files: its directory and its stdout.
files_tar() { tar -cf "$OUT/files.tar" -C / "${D#/}" "run/crtest/$ID.stdout"; }

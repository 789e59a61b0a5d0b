#!/bin/bash
# Host-side self test for crtest workloads (no CRIU involved).
#
# For every workload in workloads.yaml (or only the NAMEs given): build it with
# the exact harness command, run it twice into fresh directories -- once
# straight, once frozen with SIGSTOP for 2 s after `dump_after` steps -- and
# require exit 0, a transcript ending in `verify ok` / `done`, and identical
# transcripts.
#
# usage: workloads/selftest.sh [-j JOBS] [-k] [NAME...]
#   -j JOBS  workloads tested in parallel (default 4)
#   -k       keep the temp directory
set -u

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
jobs=4
keep=0
while getopts "j:k" opt; do
	case $opt in
	j) jobs=$OPTARG ;;
	k) keep=1 ;;
	*) echo "usage: $0 [-j JOBS] [-k] [NAME...]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))

tmp=$(mktemp -d /tmp/crtest-selftest.XXXXXX)
[ "$keep" = 1 ] || trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/run" "$tmp/res"

# workloads.yaml -> "name steps dump_after env" lines. The parser understands
# exactly the subset the file uses: `- name:`, `steps:`, `dump_after:` and a
# flow-style `env: {KEY: "value", ...}`.
parse_yaml() {
	awk '
	function flush() { if (name != "") print name, steps, dump, (env == "" ? "-" : env) }
	/^- name:/ { flush(); name = $3; steps = ""; dump = ""; env = ""; next }
	/^  steps:/ { steps = $2; next }
	/^  dump_after:/ { dump = $2; next }
	/^  env:/ {
		s = $0; sub(/^  env:[ ]*\{/, "", s); sub(/\}[ ]*(#.*)?$/, "", s)
		n = split(s, kv, ",")
		for (i = 1; i <= n; i++) {
			split(kv[i], p, ":"); k = p[1]; v = substr(kv[i], index(kv[i], ":") + 1)
			gsub(/[ "\047]/, "", k); gsub(/^[ ]*["\047]?|["\047]?[ ]*$/, "", v)
			if (k != "") env = env (env == "" ? "" : ",") k "=" v
		}
		next
	}
	END { flush() }' "$here/workloads.yaml"
}

# run_once NAME BIN STEPS DUMP_AFTER ENV MODE -> prints a failure reason, or nothing
run_once() {
	local name=$1 bin=$2 steps=$3 dump=$4 envs=$5 mode=$6
	local dir="$tmp/run/$name.$mode" pid root rc i n
	local -a envv=()
	mkdir -p "$dir"
	[ "$envs" = - ] || IFS=, read -r -a envv <<<"$envs"
	# setsid: the workload leads its own process group so SIGSTOP can freeze
	# the whole tree at once, like a checkpoint would.
	env "${envv[@]}" setsid "$bin" "$dir" "$steps" </dev/null >"$dir.log" 2>&1 &
	pid=$!
	if [ "$mode" = stop ]; then
		for ((i = 0; i < 3000; i++)); do
			n=$(grep -c '^step ' "$dir/transcript" 2>/dev/null)
			[ "${n:-0}" -ge "$dump" ] && break
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.01
		done
		# A workload whose checkpoint root is not the started process
		# (namespaces) names it in dump_root.pid.
		root=$pid
		[ -s "$dir/dump_root.pid" ] && root=$(cat "$dir/dump_root.pid")
		kill -STOP -- -"$root" 2>/dev/null || kill -STOP "$root" 2>/dev/null
		sleep 2
		kill -CONT -- -"$root" 2>/dev/null || kill -CONT "$root" 2>/dev/null
	fi
	# Poll instead of a watchdog process so nothing outlives the run.
	for ((i = 0; i < 600; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL -- -"$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		echo "$mode run: timed out"
		return
	fi
	wait "$pid"
	rc=$?
	if [ "$rc" != 0 ]; then
		echo "$mode run exit $rc: $(grep -m1 'verify FAIL' "$dir/transcript" 2>/dev/null)"
		return
	fi
	if [ "$(head -n1 "$dir/transcript")" != "start $name steps=$steps" ]; then
		echo "$mode run: bad first line"
		return
	fi
	if [ "$(tail -n2 "$dir/transcript" | tr '\n' '|')" != "verify ok|done|" ]; then
		echo "$mode run: transcript does not end with verify ok/done"
		return
	fi
	n=$(grep -c '^step ' "$dir/transcript")
	[ "$n" = "$steps" ] || echo "$mode run: $n step lines, expected $steps"
}

test_one() {
	local name=$1 steps=$2 dump=$3 envs=$4
	local bin="$tmp/bin/$name" res="$tmp/res/$name" r1 r2 t0=$SECONDS
	if ! ${CC:-cc} -static -O2 -Wall -Werror -o "$bin" "$repo/workloads/$name.c" -lpthread -lrt \
		>"$tmp/bin/$name.cc.log" 2>&1; then
		echo "FAIL $name: build failed: $(head -c 300 "$tmp/bin/$name.cc.log" | tr '\n' ' ')" >"$res"
		return
	fi
	if [ "$dump" -ge "$steps" ]; then
		echo "FAIL $name: dump_after ($dump) must be < steps ($steps)" >"$res"
		return
	fi
	run_once "$name" "$bin" "$steps" "$dump" "$envs" straight >"$res.straight" &
	run_once "$name" "$bin" "$steps" "$dump" "$envs" stop >"$res.stop"
	wait
	r1=$(cat "$res.straight") r2=$(cat "$res.stop")
	if [ -n "$r1$r2" ]; then
		echo "FAIL $name: ${r1:+$r1 }${r2}" >"$res"
	elif ! cmp -s "$tmp/run/$name.straight/transcript" "$tmp/run/$name.stop/transcript"; then
		echo "FAIL $name: transcripts differ" >"$res"
	else
		echo "PASS $name ($((SECONDS - t0))s, $(wc -l <"$tmp/run/$name.straight/transcript") lines)" >"$res"
	fi
}

mapfile -t all < <(parse_yaml)
selected=()
for line in "${all[@]}"; do
	read -r name _ <<<"$line"
	if [ $# -eq 0 ] || printf '%s\n' "$@" | grep -qx "$name"; then
		selected+=("$line")
	fi
done
if [ ${#selected[@]} -eq 0 ]; then
	echo "no workloads selected" >&2
	exit 2
fi

for line in "${selected[@]}"; do
	read -r name steps dump envs <<<"$line"
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
	test_one "$name" "$steps" "$dump" "$envs" &
done
wait

passed=0 failed=0
for line in "${selected[@]}"; do
	read -r name _ <<<"$line"
	cat "$tmp/res/$name"
	case $(cat "$tmp/res/$name") in
	PASS*) passed=$((passed + 1)) ;;
	*) failed=$((failed + 1)) ;;
	esac
done
[ "$keep" = 1 ] && echo "kept $tmp"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]

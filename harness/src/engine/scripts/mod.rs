//! The guest scripts that drive the engine: start a workload, dump, restore,
//! iterate, wait for the end, probe features. Plain busybox `sh`, written
//! into the VM's share and run by the guest init. Their exit codes
//! (`ScriptExit`) are the contract; they never decide verdicts, they only
//! report what happened.

use super::exit::rc;
use crate::config::workload::Workload;
use crate::guest::layout::{MEMDIGEST, WORKLOAD_BIN_DIR};
use crate::util::shell::quote;

mod modes;
pub use modes::*;

/// Paths one guest operation uses.
#[derive(Debug, Clone)]
pub struct OpPaths {
    /// Unique per operation within a run; names dirs in the guest and share.
    pub id: String,
}

impl OpPaths {
    pub fn new(id: &str) -> Self {
        OpPaths { id: id.to_string() }
    }
    /// The workload's own directory in the guest (tmpfs).
    fn dir(&self) -> String {
        format!("/run/crtest/{}", self.id)
    }
    /// Where the op leaves results in the share (`out/ID` on the host side).
    fn out(&self) -> String {
        format!("/mnt/xfer/out/{}", self.id)
    }
}

/// Every script runs the engine through this function, so the engine's own
/// environment (ENV_FILE, validated to hold no blanks or quotes) applies to
/// each dump, restore and check, and to nothing else.
const CRIU_FN: &str = "criu() { env $(cat /etc/crtest/engine.env 2>/dev/null) /usr/sbin/criu \"$@\"; }\n";

const PRELUDE: &str = r#"set -u
alive() { [ -d "/proc/$1" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" != Z ]; }
"#;

/// The lines every guest script starts with.
fn prelude() -> String {
    format!("{PRELUDE}{CRIU_FN}")
}

/// Shell that writes an action script for CRIU: at `post-dump` and
/// `pre-resume` (the tree is frozen, the restorer already gone) it records every fd and memory
/// mapping of process `pid` and its descendants into `file`, like zdtm does,
/// and the digest of every page CRIU restores from its images into `mem`
/// (see `memcheck`). The script always succeeds: a helper that fails must
/// not read as a failed dump, so it leaves its stderr in `mem.err` instead.
fn snapshot_hook(hook: &str, file: &str, mem: &str, pid: &str) -> String {
    format!(
        r#"cat >{hook} <<'SNAP'
#!/bin/sh
case "$CRTOOLS_SCRIPT_ACTION" in post-dump|pre-resume) ;; *) exit 0 ;; esac
# On restore the root task may have another host pid (a pid namespace's init).
[ -n "${{CRTOOLS_INIT_PID:-}}" ] && ROOT=$CRTOOLS_INIT_PID
# The tree: $ROOT and its descendants, from every process's parent pid.
for d in /proc/[0-9]*; do echo "${{d#/proc/}} $(sed 's/.*) //' $d/stat 2>/dev/null | cut -d' ' -f2)"; done >/tmp/ppids.$$
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
    rel() {{ case "$1" in "$r"/*) [ -n "$r" ] && echo "${{1#"$r"}}" && return ;; esac; echo "$1"; }}
    for f in $d/fd/*; do echo "${{n:-$p}} fd ${{f##*/}} $(rel "$(readlink $f)")"; done
    while read -r range perms off dev ino path; do echo "${{n:-$p}} map $range $perms $off $(rel "$path")"; done <$d/maps
done >"$SNAPFILE"
{MEMDIGEST} $tree >"$MEMFILE.tmp" 2>"$MEMFILE.err" && mv "$MEMFILE.tmp" "$MEMFILE"
exit 0
SNAP
chmod +x {hook}
export ROOT={pid} SNAPFILE={file} MEMFILE={mem}
"#
    )
}

/// Starts `w` in the background in its own session; `pid_base` pins its PID
/// (the dumped tree keeps its PIDs on restore, so each dump gets a range).
pub fn start_script(op: &OpPaths, w: &Workload, steps: u32, step_ms: u32, pid_base: Option<u32>) -> String {
    // `env` takes each assignment as one word, so the key is quoted too.
    let env: Vec<String> = w.environment().iter().map(|(k, v)| quote(&format!("{k}={v}"))).collect();
    let bump = pid_base
        .map(|p| format!("echo {} >/proc/sys/kernel/ns_last_pid || exit {}\n", p - 1, rc::SETUP))
        .unwrap_or_default();
    format!(
        "{prelude}D={dir}; OUT={out}\nmkdir -p \"$D\" \"$OUT\" && cd \"$D\" || exit {setup}\n{bump}\
env -i PATH=/usr/bin:/bin CRTEST_STEP_MS={step_ms} {env} setsid {prog} {args} </dev/null >{stdout} 2>/run/crtest/{id}.stdout &\n\
echo $! >\"$OUT/pid\"\n",
        prelude = prelude(),
        dir = op.dir(),
        out = op.out(),
        setup = rc::SETUP,
        env = env.join(" "),
        prog = quote(&format!("{WORKLOAD_BIN_DIR}/{}", w.program())),
        id = op.id,
        args = match &w.path {
            Some(_) => w.args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
            None => format!("\"$D\" {steps}"),
        },
        stdout = if w.path.is_some() && w.transcript_file() == "transcript" {
            "\"$D/transcript\"".to_string()
        } else {
            format!("/run/crtest/{}.stdout", op.id)
        },
    )
}

/// Shell defining how a workload in `$D` shows progress: `$T` its
/// transcript, `$PAT` what counts as a step line, `finished` when it is done.
/// Library workloads end with `done`; a user's program ends when it exits.
fn workload_sh(w: &Workload) -> String {
    match &w.path {
        Some(_) => format!("T=\"$D\"/{}; PAT=''\nfinished() {{ ! alive \"$PID\"; }}\n", quote(w.transcript_file())),
        None => {
            "T=\"$D/transcript\"; PAT='^step '\nfinished() { [ -f \"$T\" ] && [ \"$(tail -n 1 \"$T\")\" = done ]; }\n"
                .to_string()
        }
    }
}

/// Shell that waits until the workload in `$D` (process `$PID`) has written
/// `after` step lines.
fn wait_steps_sh(after: impl std::fmt::Display, timeout_s: u32) -> String {
    format!(
        r#"n=0
while :; do
    c=$(grep -c "$PAT" "$T" 2>/dev/null)
    [ "${{c:-0}}" -ge {after} ] && break
    alive "$PID" || {{ echo "workload exited before step {after}"; exit {early}; }}
    n=$((n + 1)); [ $n -gt {ticks} ] && {{ echo "workload did not reach step {after} in {timeout_s}s"; exit {tmo}; }}
    sleep 0.1
done
"#,
        ticks = timeout_s * 10,
        early = rc::EXITED_BEFORE_DUMP,
        tmo = rc::DUMP_POINT_TIMEOUT,
    )
}

/// Shell that dumps tree `$PID` into `/tmp/img-ID`, recording the frozen
/// state into `$OUT/SNAP` and the log into `$OUT/dump.log`.
fn criu_dump_sh(id: &str, w: &Workload, snap: &str) -> String {
    criu_dump_with_sh(id, w, snap, "")
}

/// [`criu_dump_sh`] with `extra` engine options (already shell words).
fn criu_dump_with_sh(id: &str, w: &Workload, snap: &str, extra: &str) -> String {
    format!(
        r#"mkdir -p /tmp/img-{id}
{hook}criu dump -t "$PID" -D /tmp/img-{id} -o dump.log -v4 --action-script /tmp/snap-{id}.sh {extra}{opts}
rc=$?
cp /tmp/img-{id}/dump.log "$OUT/dump.log"
[ $rc = 0 ] || {{ dmesg | tail -n 30 >"$OUT/dmesg"; exit {failed}; }}
"#,
        hook = snapshot_hook(&format!("/tmp/snap-{id}.sh"), &format!("\"$OUT/{snap}\""), &mem_file(snap), "$PID"),
        opts = options(&w.dump_opts),
        failed = rc::DUMP_FAILED,
    )
}

/// Shell that restores `/tmp/img-ID` detached, recording the state just
/// before the tree resumes into `$OUT/SNAP`.
/// `images` is where the image set is: the share (read in place, sparing the
/// guest's memory) or a local dump.
/// The restored root task's host pid goes to `root_pid_file(dir_op)`: a pid
/// namespace's init comes back with another one.
fn criu_restore_sh(id: &str, images: &str, w: &Workload, snap: &str, pid: &str, dir_id: &str) -> String {
    criu_restore_with_sh(id, images, w, snap, pid, dir_id, "")
}

/// [`criu_restore_sh`] with `pre` run first (in `/tmp/work-ID`) and `extra`
/// engine options.
fn criu_restore_with_sh(
    id: &str,
    images: &str,
    w: &Workload,
    snap: &str,
    pid: &str,
    dir_id: &str,
    extra: &str,
) -> String {
    format!(
        r#"mkdir -p /tmp/work-{id}
{hook}criu restore -D {images} -W /tmp/work-{id} -d -o restore.log -v4 --action-script /tmp/snap-{id}.sh --pidfile /tmp/work-{id}/root.pid {extra}{opts}
rc=$?
cp /tmp/work-{id}/restore.log "$OUT/restore.log"; cp /tmp/work-{id}/root.pid {root} 2>/dev/null; rm -rf /tmp/work-{id} /tmp/img-{id}
[ $rc = 0 ] || {{ dmesg | tail -n 30 >"$OUT/dmesg"; exit {failed}; }}
"#,
        root = root_pid_file(dir_id),
        hook = snapshot_hook(&format!("/tmp/snap-{id}.sh"), &format!("\"$OUT/{snap}\""), &mem_file(snap), pid),
        opts = options(&w.restore_opts),
        failed = rc::RESTORE_FAILED,
    )
}

/// The share path of the page digests taken beside snapshot `snap`
/// (`before.snap` -> `"$OUT/before.mem"`).
fn mem_file(snap: &str) -> String {
    format!("\"$OUT/{}.mem\"", snap.trim_end_matches(".snap"))
}

/// Engine options, one shell word each; `{dir}` stands for the workload's
/// directory (`$D` in the scripts), e.g. `--root={dir}`. Only `$D` is
/// spliced in: the rest of each option stays single-quoted.
fn options(opts: &[String]) -> String {
    opts.iter().map(|o| crate::util::shell::quote_with_var(o, "{dir}", "D")).collect::<Vec<_>>().join(" ")
}

/// Shell that points `$PID` at the process to dump: the started program,
/// or the one whose pid the workload wrote into `$D/<dump_root>` (a
/// namespace's init, which CRIU must dump from); recorded for the restore.
fn dump_root_sh(w: &Workload) -> String {
    match &w.dump_root {
        None => String::new(),
        Some(file) => format!(
            "PID=$(cat \"$D\"/{q}) || {{ echo no {q}; exit {setup}; }}\necho \"$PID\" >\"$OUT/pid\"\n",
            q = quote(file),
            setup = rc::SETUP
        ),
    }
}

/// Waits until `after` step lines exist, dumps the tree with CRIU and leaves
/// the images and the workload's files in the share.
pub fn dump_script(op: &OpPaths, w: &Workload, after: u32, timeout_s: u32) -> String {
    format!(
        r#"{prelude}D={dir}; OUT={out}; PID=$(cat "$OUT/pid")
{wl}{wait}{root}{dump}cp -a /tmp/img-{id} "$OUT/img" && tar -cf "$OUT/files.tar" -C / "${{D#/}}" "run/crtest/{id}.stdout" || exit {copy}
rm -rf /tmp/img-{id}
"#,
        prelude = prelude(),
        dir = op.dir(),
        out = op.out(),
        id = op.id,
        wl = workload_sh(w),
        wait = wait_steps_sh(after, timeout_s),
        root = dump_root_sh(w),
        dump = criu_dump_sh(&op.id, w, "before.snap"),
        copy = rc::COPY_FAILED,
    )
}

/// Puts the dumped workload's files back at their paths and restores the
/// tree detached; its PIDs are those of the dump (`pid` is the root).
pub fn restore_script(op: &OpPaths, dir_op: &OpPaths, w: &Workload, pid: u32) -> String {
    format!(
        r#"{prelude}IN=/mnt/xfer/in/{id}; OUT={out}; D={dir}
mkdir -p "$OUT" && cd / && tar -xf "$IN/files.tar" || exit {copy}
{restore}"#,
        prelude = prelude(),
        id = op.id,
        out = op.out(),
        dir = dir_op.dir(),
        restore = criu_restore_sh(&op.id, "\"$IN/img\"", w, "after.snap", &pid.to_string(), &dir_op.id),
        copy = rc::COPY_FAILED,
    )
}

/// One more C/R iteration in place (like zdtm's `--iters`): `apart` steps
/// after where the restored workload in `dir_op`'s directory is now, dump it
/// again and restore it on the same kernel, recording both states. Exits
/// NO_ROOM when the workload is too near its last step for another round.
pub fn iterate_script(
    op: &OpPaths,
    dir_op: &OpPaths,
    w: &Workload,
    pid: u32,
    apart: u32,
    steps: u32,
    timeout_s: u32,
) -> String {
    format!(
        "{prelude}D={dir}; OUT={out}; PID=$(cat {root} 2>/dev/null || echo {pid})\nmkdir -p \"$OUT\"\n\
{wl}AFTER=$(( $(grep -c \"$PAT\" \"$T\") + {apart} ))\n\
[ $AFTER -le {last} ] && alive \"$PID\" || exit {no_room}\n{wait}{dump}{restore}",
        prelude = prelude(),
        dir = dir_op.dir(),
        out = op.out(),
        root = root_pid_file(&dir_op.id),
        last = steps.saturating_sub(2),
        wl = workload_sh(w),
        no_room = rc::NO_ROOM,
        wait = wait_steps_sh("$AFTER", timeout_s),
        dump = criu_dump_sh(&op.id, w, "before.snap"),
        restore = criu_restore_sh(&op.id, &format!("/tmp/img-{}", op.id), w, "after.snap", "$PID", &dir_op.id),
    )
}

/// Where restores of `dir_id`'s workload leave the restored root's host pid.
fn root_pid_file(dir_id: &str) -> String {
    format!("/run/crtest/{dir_id}.root")
}

/// Waits for the workload in `dir_op`'s directory (process `pid`) to write
/// `done`, then copies its transcript to `op`'s share dir.
pub fn wait_script(op: &OpPaths, dir_op: &OpPaths, w: &Workload, pid: u32, timeout_s: u32) -> String {
    format!(
        r#"{prelude}D={dir}; OUT={out}; PID=$(cat {root} 2>/dev/null || echo {pid})
{wl}mkdir -p "$OUT"
n=0; code=0
while ! finished; do
    if ! alive $PID; then sleep 0.2; finished && break; code={died}; break; fi
    n=$((n + 1)); [ $n -gt {ticks} ] && {{ code={tmo}; break; }}
    sleep 0.1
done
cp "$T" "$OUT/transcript" 2>/dev/null
cp "/run/crtest/{dir_id}.stdout" "$OUT/stdout" 2>/dev/null
cp /tmp/lazy-{op_id}.log "$OUT/lazy-pages.log" 2>/dev/null
[ $code = {died} ] && dmesg | tail -n 30 >"$OUT/dmesg"
exit $code
"#,
        prelude = prelude(),
        dir = dir_op.dir(),
        dir_id = dir_op.id,
        op_id = op.id,
        root = root_pid_file(&dir_op.id),
        out = op.out(),
        wl = workload_sh(w),
        ticks = timeout_s * 10,
        died = rc::DIED,
        tmo = rc::FINISH_TIMEOUT,
    )
}

/// Asks the engine which of `features` this kernel supports, one
/// `NAME RC` line each.
pub fn feature_script(features: &[&str]) -> String {
    let names: Vec<String> = features.iter().map(|f| quote(f)).collect();
    format!(
        "{CRIU_FN}for f in {}; do criu check --feature \"$f\" >/dev/null 2>&1; echo \"$f $?\"; done\n",
        names.join(" ")
    )
}

/// Reads the answer of [`feature_script`]: feature -> supported.
pub fn parse_features(output: &str) -> std::collections::BTreeMap<String, bool> {
    output.lines().filter_map(|l| l.rsplit_once(' ')).map(|(f, rc)| (f.to_string(), rc.trim() == "0")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn w() -> Workload {
        serde_yaml_ng::from_str(
            "name: counter\nsummary: s\nsteps: 40\ndump_after: 10\ndump_opts: [\"--tcp-established\"]\n",
        )
        .unwrap()
    }

    #[test]
    fn scripts_carry_pid_base_env_and_options() {
        let op = OpPaths::new("d3");
        let s = start_script(&op, &w(), 40, 100, Some(103000));
        assert!(s.contains("echo 102999 >/proc/sys/kernel/ns_last_pid"), "{s}");
        assert!(s.contains("'GLIBC_TUNABLES=glibc.pthread.rseq=0'"), "{s}");
        assert!(s.contains("setsid '/opt/crtest/bin/counter' \"$D\" 40"), "{s}");
        let d = dump_script(&op, &w(), 10, 60);
        assert!(
            d.contains("criu dump -t \"$PID\" -D /tmp/img-d3 -o dump.log -v4 --action-script /tmp/snap-d3.sh '--tcp-established'"),
            "{d}"
        );
        assert!(d.contains("-ge 10 ]"), "{d}");
        // The page digests go beside the snapshot; a failing helper leaves its words, not a failed dump.
        assert!(d.contains("SNAPFILE=\"$OUT/before.snap\" MEMFILE=\"$OUT/before.mem\""), "{d}");
        assert!(d.contains("/opt/crtest/libexec/memdigest $tree >\"$MEMFILE.tmp\" 2>\"$MEMFILE.err\" && mv"), "{d}");
        assert!(restore_script(&OpPaths::new("x5"), &op, &w(), 103000).contains("MEMFILE=\"$OUT/after.mem\""));
        let i = iterate_script(&OpPaths::new("i4"), &op, &w(), 103000, 3, 40, 60);
        let pid = "PID=$(cat /run/crtest/d3.root 2>/dev/null || echo 103000)";
        assert!(
            i.contains(&format!("D=/run/crtest/d3; OUT=/mnt/xfer/out/i4; {pid}")) && i.contains("-ge $AFTER ]"),
            "{i}"
        );
        assert!(
            i.contains("--pidfile /tmp/work-i4/root.pid") && i.contains("/tmp/work-i4/root.pid /run/crtest/d3.root")
        );
        assert!(i.contains("+ 3 ))") && i.contains("[ $AFTER -le 38 ]"), "{i}");
        assert!(i.find("criu dump").unwrap() < i.find("criu restore -D /tmp/img-i4").unwrap(), "{i}");
    }

    /// Every script parses as shell, with the fields a user controls set
    /// to what validation lets through.
    #[test]
    fn scripts_parse_with_user_fields() {
        let w: Workload = serde_yaml_ng::from_str(
            "name: app\nsummary: s\nsteps: 40\ndump_after: 10\npath: /p\nargs: [\"a'b\", \"$(x)\"]\n\
             transcript: out.txt\ndump_root: root.pid\nenv: {A_B: \"it's $HOME\"}\n\
             dump_opts: [\"--x={dir}/'`y`\"]\nrestore_opts: [\"--root\", \"{dir}\"]\n",
        )
        .unwrap();
        let (op, d) = (OpPaths::new("r5"), OpPaths::new("d3"));
        for script in [
            start_script(&d, &w, 40, 100, Some(1000)),
            dump_script(&d, &w, 10, 60),
            restore_script(&op, &d, &w, 1000),
            iterate_script(&op, &d, &w, 1000, 3, 40, 60),
            wait_script(&op, &d, &w, 1000, 60),
            predump_script(&d, &w, 10, 2, 60),
            dump_to_page_server_script(&d, &w, 10, 60, "10.77.0.2", 27000),
            page_server_script(&op, "10.77.0.2", 27000),
            page_server_collect_script(&op, 60),
            lazy_dump_script(&d, &w, 10, 60, "10.77.0.1", 27001),
            lazy_dump_wait_script(&d, 60),
            restore_lazy_script(&op, &d, &w, 1000, "10.77.0.1", 27001),
        ] {
            let out = Command::new("sh").arg("-n").arg("-c").arg(&script).output().unwrap();
            assert!(out.status.success(), "{}\n{script}", String::from_utf8_lossy(&out.stderr));
        }
    }

    #[test]
    fn dir_placeholder_expands_in_the_guest() {
        assert_eq!(options(&["--root".into(), "{dir}".into()]), "'--root' ''\"$D\"''");
        // The rest of an option with `{dir}` stays inert.
        assert_eq!(options(&["--x={dir}/$(id)".into()]), "'--x='\"$D\"'/$(id)'");
    }
}

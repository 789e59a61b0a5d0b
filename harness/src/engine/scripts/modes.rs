//! The scripts of the C/R modes beyond a plain dump: pre-dump rounds, a
//! page server on the target, a lazy dump and a lazy restore.

use super::*;

/// The steps at which the pre-dump rounds of a dump after step `after` run:
/// one step apart, just before it (never before step 1).
pub fn predump_steps(after: u32, rounds: u32) -> Vec<u32> {
    (1..=rounds).map(|r| after.saturating_sub(rounds + 1 - r).max(1)).collect()
}

/// Like [`dump_script`], with `rounds` `criu pre-dump` rounds (memory
/// tracking, each the parent of the next) while the workload runs, then the
/// final dump of what changed since the last. Pre-dump dirs land in
/// `$OUT/pre/N` and the final dump in `$OUT/img`, without their `parent`
/// links (the host links the converted dirs again).
pub fn predump_script(op: &OpPaths, w: &Workload, after: u32, rounds: u32, timeout_s: u32) -> String {
    let id = &op.id;
    let mut pre = String::new();
    for (i, step) in predump_steps(after, rounds).into_iter().enumerate() {
        let r = i + 1;
        let prev = if r > 1 { format!("--prev-images-dir ../pre{} ", r - 1) } else { String::new() };
        pre.push_str(&wait_steps_sh(step, timeout_s));
        if r == 1 {
            pre.push_str(&dump_root_sh(w));
        }
        pre.push_str(&format!(
            r#"mkdir -p /tmp/img-{id}/pre{r}
criu pre-dump -t "$PID" -D /tmp/img-{id}/pre{r} -o pre-dump.log -v4 --track-mem {prev}{opts}
rc=$?
cp /tmp/img-{id}/pre{r}/pre-dump.log "$OUT/pre-dump{r}.log"
[ $rc = 0 ] || {{ cp "$OUT/pre-dump{r}.log" "$OUT/dump.log"; dmesg | tail -n 30 >"$OUT/dmesg"; exit {failed}; }}
"#,
            opts = options(&w.dump_opts),
            failed = rc::DUMP_FAILED,
        ));
    }
    let extra = format!("--track-mem --prev-images-dir pre{rounds} ");
    format!(
        r#"{prelude}D={dir}; OUT={out}; PID=$(cat "$OUT/pid")
{wl}{pre}{wait}alive "$PID" || {{ echo "the workload ran to its end during the pre-dump rounds"; exit {early}; }}
{dump}mkdir -p "$OUT/pre" || exit {copy}
for r in $(seq 1 {rounds}); do
    cp -a /tmp/img-{id}/pre$r "$OUT/pre/$r" && rm -f "$OUT/pre/$r/parent" && rm -rf /tmp/img-{id}/pre$r || exit {copy}
done
rm -f /tmp/img-{id}/parent
cp -a /tmp/img-{id} "$OUT/img" && tar -cf "$OUT/files.tar" -C / "${{D#/}}" "run/crtest/{id}.stdout" || exit {copy}
rm -rf /tmp/img-{id}
"#,
        prelude = prelude(),
        dir = op.dir(),
        out = op.out(),
        wl = workload_sh(w),
        wait = wait_steps_sh(after, timeout_s),
        dump = criu_dump_with_sh(id, w, "before.snap", &extra),
        early = rc::EXITED_BEFORE_DUMP,
        copy = rc::COPY_FAILED,
    )
}

/// Like [`dump_script`], sending the pages to the page server at
/// `addr:port` instead of writing them (mode `page-server`).
pub fn dump_to_page_server_script(
    op: &OpPaths,
    w: &Workload,
    after: u32,
    timeout_s: u32,
    addr: &str,
    port: u16,
) -> String {
    let extra = format!("--page-server --address {addr} --port {port} ");
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
        dump = criu_dump_with_sh(&op.id, w, "before.snap", &extra),
        copy = rc::COPY_FAILED,
    )
}

/// Starts `criu page-server` on `addr:port`, detached, writing what it
/// receives into `/tmp/ps-ID` (mode `page-server`, on the target).
pub fn page_server_script(op: &OpPaths, addr: &str, port: u16) -> String {
    let id = &op.id;
    format!(
        r#"{prelude}OUT={out}
mkdir -p "$OUT" /tmp/ps-{id} || exit {setup}
criu page-server -D /tmp/ps-{id} --address {addr} --port {port} -d --pidfile /tmp/ps-{id}.pid -o /tmp/ps-{id}.log -v4
rc=$?
cp /tmp/ps-{id}.log "$OUT/page-server.log" 2>/dev/null
[ $rc = 0 ] || exit {failed}
"#,
        prelude = prelude(),
        out = op.out(),
        setup = rc::SETUP,
        failed = rc::DUMP_FAILED,
    )
}

/// Waits for the page server of `op` to end (the dump closed its
/// connection) and moves what it received to `$OUT/ps`.
pub fn page_server_collect_script(op: &OpPaths, timeout_s: u32) -> String {
    let id = &op.id;
    format!(
        r#"{prelude}OUT={out}; P=$(cat /tmp/ps-{id}.pid 2>/dev/null); n=0
while [ -n "$P" ] && alive "$P"; do
    n=$((n + 1)); [ $n -gt {ticks} ] && {{ echo "the page server did not end within {timeout_s}s"; exit {tmo}; }}
    sleep 0.1
done
cp /tmp/ps-{id}.log "$OUT/page-server.log" 2>/dev/null
cp -a /tmp/ps-{id} "$OUT/ps" && rm -rf /tmp/ps-{id} || exit {copy}
"#,
        prelude = prelude(),
        out = op.out(),
        ticks = timeout_s * 10,
        tmo = rc::FINISH_TIMEOUT,
        copy = rc::COPY_FAILED,
    )
}

/// Dumps the workload with `--lazy-pages` (mode `lazy`, on the source): the
/// dump leaves its images without memory and then serves the pages on
/// `addr:port` until the restored tree has them all, in the background. The
/// script returns once the images are there (CRIU's `--status-fd`).
pub fn lazy_dump_script(op: &OpPaths, w: &Workload, after: u32, timeout_s: u32, addr: &str, port: u16) -> String {
    let id = &op.id;
    format!(
        r#"{prelude}D={dir}; OUT={out}; PID=$(cat "$OUT/pid")
{wl}{wait}{root}mkdir -p /tmp/img-{id}
{hook}( criu dump -t "$PID" -D /tmp/img-{id} -o dump.log -v4 --action-script /tmp/snap-{id}.sh --lazy-pages --address {addr} --port {port} --status-fd 3 {opts} 3>/tmp/st-{id}; echo $? >/tmp/rc-{id} ) </dev/null >/dev/null 2>&1 &
n=0
while [ ! -s /tmp/st-{id} ]; do
    [ -f /tmp/rc-{id} ] && {{ cp /tmp/img-{id}/dump.log "$OUT/dump.log"; dmesg | tail -n 30 >"$OUT/dmesg"; exit {failed}; }}
    n=$((n + 1)); [ $n -gt {ticks} ] && {{ echo "the lazy dump did not start serving pages within {timeout_s}s"; exit {tmo}; }}
    sleep 0.1
done
cp -a /tmp/img-{id} "$OUT/img" && rm -f "$OUT/img/dump.log" && tar -cf "$OUT/files.tar" -C / "${{D#/}}" "run/crtest/{id}.stdout" || exit {copy}
"#,
        prelude = prelude(),
        dir = op.dir(),
        out = op.out(),
        wl = workload_sh(w),
        wait = wait_steps_sh(after, timeout_s),
        root = dump_root_sh(w),
        hook = snapshot_hook(&format!("/tmp/snap-{id}.sh"), "\"$OUT/before.snap\"", &mem_file("before.snap"), "$PID"),
        opts = options(&w.dump_opts),
        ticks = timeout_s * 10,
        failed = rc::DUMP_FAILED,
        tmo = rc::DUMP_POINT_TIMEOUT,
        copy = rc::COPY_FAILED,
    )
}

/// Waits for the lazy dump of `op` to end (every page served) and reports
/// how it ended, with its whole log.
pub fn lazy_dump_wait_script(op: &OpPaths, timeout_s: u32) -> String {
    let id = &op.id;
    format!(
        r#"{prelude}OUT={out}; n=0
while [ ! -f /tmp/rc-{id} ]; do
    n=$((n + 1)); [ $n -gt {ticks} ] && {{ echo "the lazy dump still served pages after {timeout_s}s"; exit {tmo}; }}
    sleep 0.1
done
cp /tmp/img-{id}/dump.log "$OUT/dump.log"; rc=$(cat /tmp/rc-{id}); rm -rf /tmp/img-{id} /tmp/st-{id} /tmp/rc-{id}
[ "$rc" = 0 ] || {{ dmesg | tail -n 30 >"$OUT/dmesg"; exit {failed}; }}
"#,
        prelude = prelude(),
        out = op.out(),
        ticks = timeout_s * 10,
        tmo = rc::FINISH_TIMEOUT,
        failed = rc::DUMP_FAILED,
    )
}

/// Like [`restore_script`], restoring with `--lazy-pages`: a `criu
/// lazy-pages` daemon fetches the memory from the source's dump at
/// `addr:port` as the restored tree touches it (mode `lazy`).
pub fn restore_lazy_script(op: &OpPaths, dir_op: &OpPaths, w: &Workload, pid: u32, addr: &str, port: u16) -> String {
    let id = &op.id;
    format!(
        r#"{prelude}IN=/mnt/xfer/in/{id}; OUT={out}; D={dir}
mkdir -p "$OUT" /tmp/work-{id} && cd / && tar -xf "$IN/files.tar" || exit {copy}
criu lazy-pages --page-server --address {addr} --port {port} -D "$IN/img" -W /tmp/work-{id} -o /tmp/lazy-{id}.log -v4 </dev/null >/dev/null 2>&1 &
n=0
while [ ! -S /tmp/work-{id}/lazy-pages.socket ]; do
    n=$((n + 1)); [ $n -gt 300 ] && {{ cp /tmp/lazy-{id}.log "$OUT/lazy-pages.log"; echo "criu lazy-pages did not start"; exit {failed}; }}
    sleep 0.1
done
{restore}"#,
        prelude = prelude(),
        out = op.out(),
        dir = dir_op.dir(),
        restore =
            criu_restore_with_sh(id, "\"$IN/img\"", w, "after.snap", &pid.to_string(), &dir_op.id, "--lazy-pages ")
                + &format!("cp /tmp/lazy-{id}.log \"$OUT/lazy-pages.log\" 2>/dev/null\n"),
        copy = rc::COPY_FAILED,
        failed = rc::RESTORE_FAILED,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predump_rounds_come_just_before_the_dump_and_never_before_step_1() {
        assert_eq!(predump_steps(10, 2), [8, 9]);
        assert_eq!(predump_steps(2, 2), [1, 1]);
        assert_eq!(predump_steps(5, 3), [2, 3, 4]);
    }
}

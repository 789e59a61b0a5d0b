//! Real cells for the memory check: pages damaged between the dump and the
//! restore are caught by crtest itself, even in a program that never reads
//! them again, and a clean restore compares equal.

mod common;
use common::{cell, Root, SERIAL};
use std::process::Command;

const BASE: &str = "step_ms: 100\ntimeouts: { boot: 240, operation: 240 }\nvm: { accel: tcg }\n\
kernels: [\"6.1\"]\nworkloads: [counter, oneshot, forktree]\npairs: diagonal\n";

/// Fills 1 MiB once and then only prints ticks: it never reads its memory
/// again, so nothing but crtest can notice that it was damaged.
const ONESHOT: &str = r#"#include <stdio.h>
#include <sys/mman.h>
#include <time.h>
int main(void)
{
	unsigned char *mem = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return 1;
	for (unsigned long i = 0; i < (1 << 20); i++)
		mem[i] = (unsigned char)(i * 131 + 7);
	for (int i = 1; i <= 30; i++) {
		struct timespec t = { 0, 100000000 };
		printf("tick %d\n", i);
		fflush(stdout);
		while (nanosleep(&t, &t))
			;
	}
	return 0;
}
"#;

/// A converter (`CMD IN_DIR OUT_DIR`) that copies the images and flips one
/// byte in every 4 KiB page of every `pages-*.img`.
const FLIP: &str = r#"#!/usr/bin/env python3
import os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
shutil.copytree(src, dst, dirs_exist_ok=True)
for name in os.listdir(dst):
    if name.startswith("pages-") and name.endswith(".img"):
        path = os.path.join(dst, name)
        data = bytearray(open(path, "rb").read())
        for at in range(4088, len(data), 4096):
            data[at] ^= 0x01
        open(path, "wb").write(data)
"#;

/// A project whose matrix runs counter and the one-shot program on the 6.1
/// diagonal through `converter`.
fn root(converter: &str) -> Root {
    let root = Root::new("");
    let src = root.path().join("oneshot.c");
    std::fs::write(&src, ONESHOT).unwrap();
    let bin = root.path().join("oneshot");
    assert!(Command::new("cc").args(["-static", "-O2", "-o"]).arg(&bin).arg(&src).status().unwrap().success());
    let flip = root.path().join("flip.py");
    std::fs::write(&flip, FLIP).unwrap();
    std::fs::set_permissions(&flip, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        root.path().join("matrix.yaml"),
        format!(
            "{BASE}converter: {converter}\nprograms:\n  - name: oneshot\n    summary: writes 1 MiB once, never reads it\n    path: {}\n    steps: 30\n    dump_after: 8\n",
            bin.display()
        ),
    )
    .unwrap();
    root
}

/// Every page flipped: counter notices (its own digests differ, or the
/// damage kills it, depending on where its stack landed) and either way the
/// reason names the damaged page after its own; the one-shot program
/// carries on unaware, and only the memory check fails it.
#[test]
fn damaged_pages_fail_and_name_the_mapping() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = root("flip.py");
    let out = root.run(&["run", "--matrix", "--out", "out", "--seed", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let r = root.results();
    let c = cell(&r, "counter/6.1->6.1");
    assert_eq!(c["status"], "FAIL", "{c}");
    let reason = c["reason"].as_str().unwrap();
    assert!(reason.contains("; memory: pid ") && reason.contains(" map ") && reason.contains(" differs"), "{reason}");
    let o = cell(&r, "oneshot/6.1->6.1");
    assert_eq!(o["status"], "FAIL", "{o}");
    let reason = o["reason"].as_str().unwrap();
    assert!(reason.starts_with("memory: pid ") && reason.contains(" map ") && reason.contains(" differs"), "{reason}");
    // Its transcript was fine: only the memory check could tell.
    let dir = root.out().join(o["artifacts"].as_str().unwrap());
    let restored = std::fs::read_to_string(dir.join("restored.transcript")).unwrap();
    assert_eq!(restored.lines().count(), 30);
    for name in ["dump.mem", "restore.mem"] {
        assert!(std::fs::read_to_string(dir.join(name)).unwrap().contains("\t"), "{name}");
    }
}

/// The same cells through the identity converter: a clean restore passes.
#[test]
fn clean_restores_compare_equal() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = root("identity");
    let out = root.run(&["run", "--matrix", "--out", "out", "--seed", "1"]);
    assert_eq!(out.status.code(), Some(0));
    let r = root.results();
    // forktree keeps zombies in its tree: they have no memory to digest.
    assert_eq!(cell(&r, "forktree/6.1->6.1")["status"], "PASS", "{}", cell(&r, "forktree/6.1->6.1"));
    for id in ["counter/6.1->6.1", "oneshot/6.1->6.1"] {
        let c = cell(&r, id);
        assert_eq!(c["status"], "PASS", "{c}");
        let dir = root.out().join(c["artifacts"].as_str().unwrap());
        assert!(std::fs::read_to_string(dir.join("restore.mem")).unwrap().contains(" rw-p "), "{id}");
    }
}

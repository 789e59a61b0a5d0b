//! Results documents for the comparison tests.

use super::Change;
use serde_json::{json, Value};

pub(super) const SEGV: &str = "restore: Error (criu/cr-restore.c:1499): killed by signal 11";

pub(super) fn doc(cells: &[(&str, &str, Option<&str>)]) -> Value {
    let cells: Vec<Value> =
        cells.iter().map(|(id, status, reason)| json!({"id": id, "status": status, "reason": reason})).collect();
    json!({"schema": "crtest-results/1", "cells": cells})
}

pub(super) fn baseline() -> Value {
    doc(&[
        ("counter/6.1->6.12", "PASS", None),
        ("pipe/6.1->6.12", "FAIL", Some(SEGV)),
        ("filemap/6.1->6.12", "ERROR", Some("boot_dst: timed out")),
        ("tcp/6.1->6.12", "FAIL", Some("compare: output differs")),
        ("udp/6.1->6.12", "SKIP", Some("no net")),
        ("gone/6.1->6.12", "PASS", None),
    ])
}

pub(super) fn ids(changes: &[Change]) -> Vec<&str> {
    changes.iter().map(|c| c.id.as_str()).collect()
}

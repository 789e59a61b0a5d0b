//! Results documents and page helpers for the page tests.

use crate::report::load::Doc;

pub(super) const EVIL: &str = "</script><script>alert(1)</script><img src=x onerror=alert(2)>\"'&";

pub(super) fn doc(cells: serde_json::Value) -> Doc {
    let v = serde_json::json!({"schema": "crtest-results/1", "seed": 7, "accel": "tcg", "cells": cells,
        "kernels": {"6.1": {"release": "6.1.0-50-amd64", "packages": ["linux-image-6.1<b>"], "engine": "criu-3.17.1"}}});
    Doc::parse(&serde_json::to_vec(&v).unwrap()).unwrap()
}

pub(super) fn cell(id: &str, status: &str, reason: Option<&str>, known: Option<&str>) -> serde_json::Value {
    let (w, pair) = id.split_once('/').unwrap();
    let (s, d) = pair.split_once("->").unwrap();
    serde_json::json!({"id": id, "workload": w, "src": s, "dst": d, "status": status, "reason": reason,
        "known": known, "stages": [{"stage": "dump", "status": "ok", "secs": 1.5}], "conversion": [],
        "artifacts": format!("cells/{w}/{s}--{d}")})
}

/// Everything outside `<script>` elements, and the data block apart.
pub(super) fn split(page: &str) -> (String, String) {
    let (before, rest) = page.split_once("<script type=\"application/json\" id=\"crtest-data\">").unwrap();
    let (data, after) = rest.split_once("</script>").unwrap();
    let after = after.split_once("<script>").unwrap().0;
    (format!("{before}{after}"), data.to_string())
}

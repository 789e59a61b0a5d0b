//! report.html in a real browser: a real run (5.10 and 6.1, all pairs,
//! counter, unix_stream, and posix_mqueue with --run-known-gaps, whose dump
//! FAILs with CRIU's words), then headless Chromium loads the page and its
//! DOM is checked against results.json: the heat map's pass/ran squares, a
//! failing cell opened from the URL (`#cell=ID`) with its reason, and every
//! artifact link of every cell (`#open=all`) pointing at a file that exists.
//! `crtest show` and `crtest report` are checked on the same output.
//!
//! `CRTEST_SCREENSHOT_TO=docs/report.png` keeps the browser's screenshot.

mod common;
use common::{Root, SERIAL};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MATRIX: &str = "kernels: [\"5.10\", \"6.1\"]\nworkloads: [counter, unix_stream, posix_mqueue]\npairs: all\n\
step_ms: 100\ntimeouts: { boot: 240, operation: 240 }\nvm: { accel: tcg, memory_mb: 1024 }\n";

/// Runs headless Chromium on `page` (+ `hash`) with `args`; its stdout.
fn chromium(page: &Path, hash: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}{hash}", page.display());
    let mut child = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(&url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium is needed to check report.html (ci/host-deps.sh installs it)");
    let started = Instant::now();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium {url}: {status}");
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish with {url} within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap()
}

/// The `<tag ...>...</tag>` element around the first `marker` (not nested in another `tag`).
fn element<'a>(dom: &'a str, marker: &str, tag: &str) -> &'a str {
    let at = dom.find(marker).unwrap_or_else(|| panic!("`{marker}` not in the DOM"));
    let start = dom[..at + 1].rfind(&format!("<{tag}")).unwrap();
    let end = format!("</{tag}>");
    let stop = dom[at..].find(&end).map(|i| at + i + end.len()).unwrap();
    &dom[start..stop]
}

/// How the DOM serialises text.
fn text(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// (source kind, target kind) -> (PASS, cells that ran), from results.json.
fn expected_squares(r: &serde_json::Value) -> BTreeMap<(String, String), (usize, usize)> {
    let mut m: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    for c in r["cells"].as_array().unwrap() {
        let kind = |k: &str, e: &str| match c[e].as_str() {
            Some(e) => format!("{}@{e}", c[k].as_str().unwrap()),
            None => c[k].as_str().unwrap().to_string(),
        };
        let sq = m.entry((kind("src", "src_engine"), kind("dst", "dst_engine"))).or_default();
        match c["status"].as_str().unwrap() {
            "SKIP" => {}
            "PASS" => *sq = (sq.0 + 1, sq.1 + 1),
            _ => sq.1 += 1,
        }
    }
    m
}

/// The heat map's squares as the browser shows them.
fn shown_squares(dom: &str) -> BTreeMap<(String, String), (usize, usize)> {
    let heat = element(dom, "class=\"heat\"", "table");
    let mut m = BTreeMap::new();
    for td in heat.split("<td class=\"sq\"").skip(1) {
        let attr = |name: &str| td.split(&format!("{name}=\"")).nth(1).unwrap().split('"').next().unwrap().to_string();
        let shown = td.split('>').nth(1).unwrap().split('<').next().unwrap();
        let (p, r) = shown.split_once('/').unwrap();
        m.insert((attr("data-src"), attr("data-dst")), (p.parse().unwrap(), r.parse().unwrap()));
    }
    m
}

#[test]
fn report_html_in_a_real_browser() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Root::new(MATRIX);
    let run = root.run(&["run", "--matrix", "--run-known-gaps", "--seed", "1", "--out", "out"]);
    assert_eq!(run.status.code(), Some(1), "posix_mqueue FAILs");
    let r = root.results();
    let out = root.out();
    let page = out.join("report.html");

    // The summary table: at the end of the run's output and the top of grid.txt.
    let stdout = String::from_utf8_lossy(&run.stdout);
    let grid = std::fs::read_to_string(out.join("grid.txt")).unwrap();
    let table = grid.split("\n\n").next().unwrap();
    assert!(table.starts_with("PASS / cells that ran") && table.contains("5.10->"), "{grid}");
    let printed = stdout.rfind(table).unwrap_or_else(|| panic!("summary table not printed:\n{stdout}"));
    assert!(printed > stdout.rfind("Cells that did not pass").unwrap(), "the table ends the output: {stdout}");

    // The heat map shows results.json's counts, and they are not all alike.
    let expected = expected_squares(&r);
    let dom = chromium(&page, "", &["--dump-dom"]);
    assert_eq!(shown_squares(&dom), expected, "heat map vs results.json");
    assert_eq!(expected.len(), 4, "{expected:?}");
    let distinct: std::collections::BTreeSet<_> = expected.values().collect();
    assert!(expected.values().any(|(p, n)| p < n) && distinct.len() > 1, "{expected:?}");

    // A failing cell no known incompatibility explains, opened from the URL.
    let cells = r["cells"].as_array().unwrap();
    let fail = cells
        .iter()
        .find(|c| c["status"] == "FAIL" && c["known"].is_null())
        .unwrap_or_else(|| panic!("no unexplained FAIL in {r}"));
    let (id, reason) = (fail["id"].as_str().unwrap(), fail["reason"].as_str().unwrap());
    assert!(id.starts_with("posix_mqueue/") && reason.starts_with("dump: Error ("), "{fail}");
    let dom = chromium(&page, &format!("#cell={}", percent_encode(id)), &["--dump-dom"]);
    let opened = element(&dom, &format!("<code>{}</code>", text(id)), "details");
    assert!(opened.starts_with("<details class=\"cell\"") && opened.contains(" open=\"\""), "{opened}");
    assert!(opened.contains(&format!("<th>reason</th><td>{}</td>", text(reason))), "{opened}");
    assert!(opened.contains("<th>stage</th>") && opened.contains("dump.log"), "{opened}");
    assert!(opened.contains("not explained"), "{opened}");
    // It is listed before every passing cell and every known incompatibility.
    let first_pass = dom.find("<span class=\"st st-PASS\">PASS</span> <code>").unwrap();
    assert!(dom.find(&format!("<code>{}</code>", text(id))).unwrap() < first_pass);
    // Closed cells carry no body until opened.
    assert_eq!(dom.matches("<div class=\"body\"></div>").count(), cells.len() - 1);

    // Every artifact link of every cell points at something that exists.
    let all = chromium(&page, "#open=all", &["--dump-dom"]);
    let hrefs: Vec<&str> = all.split("href=\"").skip(1).map(|h| h.split('"').next().unwrap()).collect();
    let local: Vec<&&str> = hrefs.iter().filter(|h| !h.starts_with('#') && !h.starts_with("http")).collect();
    assert!(local.len() >= cells.len() * 3, "{} links for {} cells", local.len(), cells.len());
    for h in &local {
        let p = out.join(percent_decode(&h.replace("&amp;", "&")));
        assert!(p.exists(), "link {h} -> {} does not exist", p.display());
    }
    assert!(local.iter().any(|h| h.ends_with("/restore.log")) && local.iter().any(|h| h.starts_with("vms/")));

    // A picture of the page with that cell open, for people.
    let png = out.join("report.png");
    let hash = format!("#cell={}", percent_encode(id));
    chromium(&page, &hash, &["--window-size=1280,1800", &format!("--screenshot={}", png.display())]);
    let data = std::fs::read(&png).unwrap();
    assert!(data.starts_with(b"\x89PNG") && data.len() > 20_000, "{} bytes", data.len());
    if let Some(to) = std::env::var_os("CRTEST_SCREENSHOT_TO") {
        std::fs::copy(&png, common::repo().join(to)).unwrap();
    }

    // The same story in the terminal (not a terminal here: no colour).
    let show = root.run(&["show", id, "--out", "out"]);
    assert_eq!(show.status.code(), Some(0));
    let text_out = String::from_utf8_lossy(&show.stdout);
    assert!(text_out.starts_with(&format!("FAIL {id}\n  reason: {reason}")), "{text_out}");
    assert!(text_out.contains("-- stages") && text_out.contains("-- dump.log") && !text_out.contains('\x1b'));
    let coloured = root.run(&["show", id, "--out", "out", "--color", "always"]);
    assert!(String::from_utf8_lossy(&coloured.stdout).starts_with("\x1b[1;31mFAIL"));
    let missing = root.run(&["show", "counter/6.1", "--out", "out"]);
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("no cell `counter/6.1`") && err.contains("did you mean") && err.contains("counter/6.1->5.10"));

    // `crtest report` renders the same page from results.json alone.
    let before = std::fs::read(&page).unwrap();
    std::fs::remove_file(&page).unwrap();
    assert_eq!(root.run(&["report", "out"]).status.code(), Some(0));
    assert!(std::fs::read(&page).unwrap() == before, "crtest report differs from the run's report.html");
}

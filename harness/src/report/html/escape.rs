//! Escaping and links: every string from the results or the artifacts goes
//! through here before it is written into the page.

use std::fmt::Write;
use std::path::Path;

/// Text safe in HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// JSON that cannot end its `<script>` element or open a comment in it.
pub(super) fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Directory `to` as a link prefix from a page in directory `from` (both
/// absolute), e.g. `../shard-1/` (a merged report links into its shards).
pub fn relative_href(from: &Path, to: &Path) -> String {
    let (a, b): (Vec<_>, Vec<_>) = (from.components().collect(), to.components().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let ups = std::iter::repeat_n("..".to_string(), a.len() - common);
    let downs = b[common..].iter().map(|c| c.as_os_str().to_string_lossy().into_owned());
    ups.chain(downs).map(|s| format!("{s}/")).collect()
}

/// Percent-encodes everything but unreserved characters.
pub(super) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A relative link to `path`, each segment percent-encoded.
pub(super) fn href(path: &str) -> String {
    path.split('/').map(encode).collect::<Vec<_>>().join("/")
}

pub(super) fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_links_are_relative_to_the_merged_report() {
        let rel = |a: &str, b: &str| relative_href(Path::new(a), Path::new(b));
        assert_eq!(rel("/ci/merged", "/ci/shard-1"), "../shard-1/");
        assert_eq!(rel("/ci", "/ci/shards/1"), "shards/1/");
        assert_eq!(rel("/ci/out", "/ci/out"), "");
    }
}

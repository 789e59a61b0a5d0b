//! YAML loading with errors that name the file, the line and what was expected.

use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// A configuration error located in a file.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        ConfigError { path: path.to_path_buf(), line, message: message.into() }
    }
}

/// Largest configuration file read; anything bigger is not a hand-written file.
pub const MAX_BYTES: u64 = 1 << 20;

/// Reads and deserializes `path` (a regular file of at most [`MAX_BYTES`]).
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<(T, String), ConfigError> {
    let data = crate::util::fsutil::read_bounded(path, MAX_BYTES)
        .map_err(|e| ConfigError::new(path, None, crate::util::error::chain(&e)))?;
    let text = String::from_utf8(data).map_err(|e| {
        let line = e.as_bytes()[..e.utf8_error().valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
        ConfigError::new(path, Some(line), format!("expected UTF-8 text: {}", e.utf8_error()))
    })?;
    let value = parse(path, &text)?;
    Ok((value, text))
}

/// Deserializes `text`, attributing errors to `path`.
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    serde_yaml_ng::from_str(text).map_err(|e| {
        // A few errors are about the whole stream and come without a
        // location; point at the second document's marker, else line 1.
        let line = e.location().map(|l| l.line()).or_else(|| Some(document_marker_line(text).unwrap_or(1)));
        // serde_yaml_ng appends "at line X column Y"; the prefix already says it.
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        ConfigError::new(path, line, msg)
    })
}

/// The line of a document marker (`---` or `...`) after the first content
/// line: where a second document starts.
fn document_marker_line(text: &str) -> Option<usize> {
    let first = text.lines().position(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))?;
    text.lines()
        .enumerate()
        .skip(first + 1)
        .find(|(_, l)| l.starts_with("---") || l.starts_with("..."))
        .map(|(i, _)| i + 1)
}

/// The 1-based line of the first occurrence of `needle` after the line that
/// starts `section` (for errors found after parsing, which has no spans);
/// the section's own line when `needle` is written another way (escapes,
/// anchors), else line 1, so an error always points somewhere.
pub fn line_of(text: &str, section: &str, needle: &str) -> Option<usize> {
    find_line(text, section, needle).or_else(|| Some(section_line(text, section).unwrap_or(1)))
}

/// Like [`line_of`], but only where `needle` is actually found.
pub fn find_line(text: &str, section: &str, needle: &str) -> Option<usize> {
    let start = section_line(text, section).map_or(0, |l| l - 1);
    text.lines().enumerate().skip(start).find(|(_, l)| l.contains(needle)).map(|(i, _)| i + 1)
}

fn section_line(text: &str, section: &str) -> Option<usize> {
    text.lines().position(|l| l.trim_start().starts_with(&format!("{section}:"))).map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        a: u32,
    }

    #[test]
    fn error_names_file_and_line() {
        let err = parse::<T>(Path::new("m.yaml"), "a: 1\nb: 2\n").unwrap_err();
        assert_eq!(err.line, Some(2));
        let text = err.to_string();
        assert!(text.starts_with("m.yaml:2: unknown field `b`"), "{text}");
    }

    #[test]
    fn wrong_type_is_located() {
        let err = parse::<T>(Path::new("m.yaml"), "\n\na: many\n").unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(err.to_string().contains("invalid type"), "{err}");
    }

    #[test]
    fn files_that_are_not_text_or_not_regular() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.yaml");
        std::fs::write(&p, b"a: 1\nb: \xff\n").unwrap();
        let err = load::<T>(&p).unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
        assert!(err.to_string().contains("expected UTF-8 text"), "{err}");
        let err = load::<T>(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(err.to_string(), "/dev/zero: expected a regular file");
        std::fs::write(&p, vec![b'#'; MAX_BYTES as usize + 1]).unwrap();
        assert!(load::<T>(&p).unwrap_err().to_string().contains("expected at most 1048576"));
    }

    #[test]
    fn whole_stream_errors_get_a_line() {
        let err = parse::<T>(Path::new("m.yaml"), "a: 1\n---\na: 2\n").unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
        let err = parse::<T>(Path::new("m.yaml"), "&a [*a]\n").unwrap_err();
        assert!(err.line.is_some(), "{err}");
    }

    #[test]
    fn line_of_searches_within_section() {
        let text = "kernels: [\"6.1\"]\nworkloads:\n  - counter\n  - \"6.1\"\n";
        assert_eq!(line_of(text, "workloads", "6.1"), Some(4));
        assert_eq!(line_of(text, "kernels", "6.1"), Some(1));
        assert_eq!(line_of(text, "workloads", "absent"), Some(2));
        assert_eq!(line_of(text, "nothing", "absent"), Some(1));
    }
}

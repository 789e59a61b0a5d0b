//! POSIX shell quoting and the character sets user strings must keep to.
//!
//! Guest scripts are busybox `sh` built from strings; QEMU's `exec:`
//! migration URIs run through `sh -c`. Every user string either goes through
//! [`quote`] or is checked against a safe set at load time ([`check_name`],
//! [`check_env_key`]), so nothing a matrix says is ever run as shell.

/// `text` as one shell word: single quotes, with each `'` as `'\''`.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `text` as one shell word in which each `placeholder` is replaced by the
/// value of shell variable `var`: literal parts are single-quoted and the
/// variable is spliced in double quotes (`'--root='"$D"`), so the
/// variable's value is never split or expanded again, and nothing in the
/// literal parts (`$`, backticks, `\`) is live.
pub fn quote_with_var(text: &str, placeholder: &str, var: &str) -> String {
    let parts: Vec<String> = text.split(placeholder).map(quote).collect();
    parts.join(&format!("\"${var}\""))
}

/// Longest name or file name accepted.
pub const NAME_MAX: usize = 64;

/// What [`check_name`] accepts, for error messages.
pub const NAME_RULE: &str =
    "1 to 64 of A-Z a-z 0-9 _ . + -, not starting with `.` or `-` and without `..` (it names files and runs in shell)";

/// A name [`check_name`] refuses, with what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(pub String);

/// Whether `name` is safe as a file name component and a shell word as it
/// is: no `/`, no `..`, no whitespace or shell metacharacters.
pub fn check_name(name: &str) -> Result<(), NameError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-');
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && name.chars().all(ok_char)
        && !name.starts_with(['.', '-'])
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err(NameError(format!("`{}`: expected {NAME_RULE}", printable(name))))
    }
}

/// An environment variable name that is not a shell identifier (shown
/// [`printable`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("env key `{0}`: expected a shell identifier ([A-Za-z_][A-Za-z0-9_]*)")]
pub struct EnvKeyError(pub String);

/// Whether `key` is a shell identifier (an environment variable name `env`
/// can set): a letter or `_`, then letters, digits or `_`.
pub fn check_env_key(key: &str) -> Result<(), EnvKeyError> {
    let mut chars = key.chars();
    let first = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && key.len() <= 128 {
        Ok(())
    } else {
        Err(EnvKeyError(printable(key)))
    }
}

/// `text` shortened and with control characters escaped, for messages.
pub fn printable(text: &str) -> String {
    let short: String = text.chars().take(80).collect();
    let mut out = short.escape_debug().to_string();
    if text.chars().count() > 80 {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// What `sh` makes of `script`'s words, one per line.
    fn words(script: &str, d: &str) -> String {
        let out = Command::new("sh").arg("-c").arg(format!("printf '%s\\n' {script}")).env("D", d).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn quote_survives_single_quotes_and_metacharacters() {
        assert_eq!(quote("a'b"), r"'a'\''b'");
        let hostile = "x'$(touch /nonexistent/MARK)`id`\\;\"$HOME\n";
        assert_eq!(words(&quote(hostile), ""), format!("{hostile}\n"));
    }

    #[test]
    fn placeholder_splices_the_variable_only() {
        let w = quote_with_var("--root={dir}/$(id)`x`\\", "{dir}", "D");
        assert_eq!(w, r#"'--root='"$D"'/$(id)`x`\'"#);
        assert_eq!(words(&w, "/run/a b"), "--root=/run/a b/$(id)`x`\\\n");
        assert_eq!(quote_with_var("{dir}", "{dir}", "D"), r#"''"$D"''"#);
        assert_eq!(quote_with_var("plain", "{dir}", "D"), "'plain'");
    }

    #[test]
    fn names_keep_to_a_safe_set() {
        for good in ["counter", "my-app_2", "a.b", "x+y"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a/b", "..", "a..b", ".hidden", "-rf", "a b", "$(id)", "a;b", "`x`", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_env_key("GLIBC_TUNABLES").is_ok());
        for bad in ["", "1A", "A-B", "A;rm", "$(x)", "A B"] {
            assert!(check_env_key(bad).is_err(), "{bad}");
        }
    }
}

//! The generated head of a guest script: shell variables, each value one
//! word quoted by [`quote`], so whatever a value holds reaches the body as
//! a literal string. The exit codes of `engine/exit.rs` come first.

use crate::engine::exit::rc;
use crate::util::shell::quote;

/// The exit codes the scripts use, as `RC_*` variables.
const EXIT_CODES: [(&str, i32); 9] = [
    ("RC_SETUP", rc::SETUP),
    ("RC_EXITED_BEFORE_DUMP", rc::EXITED_BEFORE_DUMP),
    ("RC_DUMP_POINT_TIMEOUT", rc::DUMP_POINT_TIMEOUT),
    ("RC_NO_ROOM", rc::NO_ROOM),
    ("RC_DUMP_FAILED", rc::DUMP_FAILED),
    ("RC_RESTORE_FAILED", rc::RESTORE_FAILED),
    ("RC_COPY_FAILED", rc::COPY_FAILED),
    ("RC_DIED", rc::DIED),
    ("RC_FINISH_TIMEOUT", rc::FINISH_TIMEOUT),
];

/// A script's variables in order: (name, value), values unquoted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header(Vec<(&'static str, String)>);

impl Header {
    pub fn new() -> Self {
        Header::default()
    }

    /// Adds `name` set to `value`.
    pub fn var(mut self, name: &'static str, value: impl ToString) -> Self {
        debug_assert!(name.chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{name}");
        self.0.push((name, value.to_string()));
        self
    }

    /// Adds list `name`: `words`, each already one quoted shell word
    /// ([`quote`], `quote_with_var`), joined by blanks; the body reads it
    /// back with `eval "set -- $NAME"`.
    pub fn words(self, name: &'static str, words: Vec<String>) -> Self {
        self.var(name, words.join(" "))
    }

    /// The value of `name`, unquoted.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The shell: the exit codes on one line, then one `NAME='value'` line
    /// per variable.
    pub fn render(&self) -> String {
        let codes: Vec<String> = EXIT_CODES.iter().map(|(n, c)| format!("{n}={}", quote(&c.to_string()))).collect();
        let mut out = codes.join(" ") + "\n";
        for (name, value) in &self.0 {
            out.push_str(&format!("{name}={}\n", quote(value)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// What `sh` prints for `print` after `header`.
    fn run(header: &Header, print: &str) -> String {
        let out = Command::new("sh").arg("-c").arg(format!("{}{print}", header.render())).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn hostile_values_reach_the_body_literally() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("MARKER");
        let m = marker.display();
        for value in [
            format!("$(touch {m})"),
            format!("`touch {m}`"),
            format!("it's a \"quote\"; touch {m}"),
            "two  spaces\tand\na newline".to_string(),
            "\\$HOME ${HOME} *".to_string(),
            String::new(),
        ] {
            let h = Header::new().var("ID", "x").var("VALUE", &value);
            assert_eq!(run(&h, "printf %s \"$VALUE\""), value);
            assert!(!marker.exists(), "{value} ran");
        }
    }

    #[test]
    fn lists_come_back_as_their_words() {
        let words = ["a'b", "$(id)", "two words", ""].map(quote).to_vec();
        let h = Header::new().words("LIST", words);
        assert_eq!(run(&h, "eval \"set -- $LIST\"; printf '<%s>' \"$@\""), "<a'b><$(id)><two words><>");
        assert_eq!(run(&Header::new().words("LIST", vec![]), "eval \"set -- $LIST\"; echo $#"), "0\n");
    }

    #[test]
    fn exit_codes_come_from_exit_rs() {
        let out = run(&Header::new(), "echo $RC_SETUP $RC_DUMP_FAILED $RC_FINISH_TIMEOUT");
        assert_eq!(out, format!("{} {} {}\n", rc::SETUP, rc::DUMP_FAILED, rc::FINISH_TIMEOUT));
        assert_eq!(Header::new().var("A", 1).var("B", "x y").get("B"), Some("x y"));
    }
}

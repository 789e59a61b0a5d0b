//! How a typed error reads in a reason or a message: its own words, then
//! each cause after a colon, as anyhow's `{:#}` prints a chain. Library
//! errors keep their cause as `source` and leave it out of their own words,
//! so the chain is printed once whichever way it is shown.

use std::error::Error;
use std::fmt::Write;

/// `error: cause: cause-of-cause...`.
pub fn chain(error: &(dyn Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let _ = write!(out, ": {cause}");
        next = cause.source();
    }
    out
}

/// An I/O failure on a path: `{what} {path}` with the OS error as its cause.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}", path.display())]
pub struct IoAt {
    pub what: &'static str,
    pub path: std::path::PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// `map_err` for an I/O result on a path: `.map_err(io_at("reading", &p))`.
pub fn io_at(what: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> IoAt {
    let path = path.to_path_buf();
    move |source| IoAt { what, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("converting dir")]
    struct Outer(#[source] IoAt);

    #[test]
    fn a_chain_names_every_cause_once() {
        let io = std::io::Error::from_raw_os_error(2);
        let e = Outer(io_at("reading", std::path::Path::new("/x/y"))(io));
        assert_eq!(chain(&e), "converting dir: reading /x/y: No such file or directory (os error 2)");
        // The same chain as anyhow prints it at the top.
        assert_eq!(
            format!(
                "{:#}",
                anyhow::Error::new(Outer(IoAt {
                    what: "reading",
                    path: "/x/y".into(),
                    source: std::io::Error::from_raw_os_error(2)
                }))
            ),
            chain(&e)
        );
    }
}

//! The bodies of crtest's subcommands. Each takes its parsed arguments and
//! writes to the writers it is given (results on stdout, complaints on
//! stderr), so the binary stays wiring and tests can capture what a command
//! prints. Progress of runs goes to a [`Reporter`](crate::event::Reporter).

pub mod bisect;
pub mod cache;
pub mod cell;
pub mod convert;
pub mod lists;
pub mod plan;
pub mod results;
pub mod run;
pub mod select;

use std::io::Write;

/// Where a command writes: its results on `stdout`, the notes that explain
/// an exit status (a skipped revision, an interrupted run) on `stderr`.
pub struct Out<'a> {
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
}

/// The catalog of known incompatibilities when the project is at hand.
fn known_if_available() -> Option<crate::verdict::known::Known> {
    crate::verdict::known::Known::load(&crate::prepare::project_root().join(crate::verdict::known::FILE)).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::config::matrix::tests::{fixtures, formats};
    use crate::prepare::Project;

    /// What a command wrote, for assertions.
    #[derive(Default)]
    pub struct Captured {
        pub stdout: Vec<u8>,
        pub stderr: Vec<u8>,
    }

    impl Captured {
        pub fn out(&mut self) -> super::Out<'_> {
            super::Out { stdout: &mut self.stdout, stderr: &mut self.stderr }
        }

        pub fn text(&self) -> String {
            String::from_utf8(self.stdout.clone()).unwrap()
        }
    }

    /// A project of the matrix fixtures: kernels 5.10, 6.1 and 6.12,
    /// workloads counter and pipe, formats criu-4.1 and criu-4.2.
    pub fn project() -> (tempfile::TempDir, Project) {
        let (dir, catalog, library) = fixtures();
        let formats = formats(dir.path());
        let engines = crate::config::formats::tests::engines_of(&["4.1", "4.2"]);
        let project =
            Project { root: dir.path().to_path_buf(), catalog, library, engines, formats, known: Default::default() };
        (dir, project)
    }
}

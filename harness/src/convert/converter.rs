//! The contract every converter keeps, built in or a user's command.

use super::crit::CritError;
use super::external::ExternalError;
use super::images::ImageError;
use crate::util::error::IoAt;
use crate::util::fsutil::ReadError;
use std::path::{Path, PathBuf};

/// Converts an image directory from one format version to another.
pub trait Converter: Send + Sync {
    fn name(&self) -> &str;
    /// Converts `input` into the (not yet existing) directory `output`.
    fn convert(&self, input: &Path, output: &Path, from: &str, to: &str) -> Result<(), ConvertError>;
    /// Whether a failure of this converter is a result (it is part of what
    /// is tested) rather than a fault of crtest.
    fn under_test(&self) -> bool;
    /// What the converter observed beyond success (e.g. byte equality).
    fn note(&self, _input: &Path, _output: &Path) -> Option<String> {
        None
    }
}

/// Why a conversion step did not convert; a step record keeps its chain.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    IoAt(#[from] IoAt),
    #[error("identity conversion of {}", input.display())]
    Identity {
        input: PathBuf,
        #[source]
        source: IoAt,
    },
    #[error("creating the JSON scratch dir")]
    Scratch(#[source] std::io::Error),
    /// Copying a file crit does not decode.
    #[error("copying {name}")]
    Copy {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Crit(#[from] CritError),
    /// An image the converter rewrites is a link or special file.
    #[error("{name}: expected a regular file, found a link or special file")]
    NotAFile { name: String },
    #[error("{name}")]
    Read {
        name: String,
        #[source]
        error: ReadError,
    },
    #[error("{name}")]
    Image {
        name: String,
        #[source]
        source: ImageError,
    },
    #[error(transparent)]
    External(#[from] ExternalError),
}

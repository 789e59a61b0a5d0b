//! The converters crtest has built in: `identity`, `crit-recode` and
//! `pagemap-nr-pages`.

use super::crit::{self, Crit};
use super::images::{self, ImageFile};
use super::{ConvertError, Converter};
use crate::util::fsutil;
use std::path::Path;

/// Copies the images unchanged (same format on both sides).
pub struct Identity;

impl Converter for Identity {
    fn name(&self) -> &str {
        "identity"
    }
    fn convert(&self, input: &Path, output: &Path, _from: &str, _to: &str) -> Result<(), ConvertError> {
        fsutil::copy_dir(input, output).map_err(|source| ConvertError::Identity { input: input.into(), source })
    }
    fn under_test(&self) -> bool {
        false
    }
}

/// Decodes every image with the sender's crit and encodes it back with the
/// receiver's; raw files (pages, tarballs) are copied. How many images came
/// out byte-for-byte identical is reported with the step.
pub struct CritRecode {
    pub sender: Crit,
    pub receiver: Crit,
}

impl Converter for CritRecode {
    fn name(&self) -> &str {
        "crit-recode"
    }
    fn convert(&self, input: &Path, output: &Path, _from: &str, _to: &str) -> Result<(), ConvertError> {
        std::fs::create_dir_all(output)?;
        let json = tempfile::tempdir().map_err(ConvertError::Scratch)?;
        self.sender.decode(input, json.path())?;
        self.receiver.encode(json.path(), output)?;
        copy_raw(input, output)
    }
    fn under_test(&self) -> bool {
        true
    }
    fn note(&self, input: &Path, output: &Path) -> Option<String> {
        let (mut same, mut differ) = (0, Vec::new());
        for name in crit::file_names(input).ok()?.into_iter().filter(|n| !crit::is_raw(n)) {
            match std::fs::read(input.join(&name)).ok()? == std::fs::read(output.join(&name)).ok()? {
                true => same += 1,
                false => differ.push(name),
            }
        }
        Some(match differ.len() {
            0 => format!("all {same} images byte-identical after recoding"),
            n => format!("{same} images byte-identical, {n} differ: {}", differ.join(", ")),
        })
    }
}

/// CRIU 4.2 -> 4.1: puts `pagemap_entry.nr_pages` back where 4.1 reads it
/// (see `images::pagemap_to_4_1`); every other file is copied unchanged.
pub struct PagemapNrPages;

impl Converter for PagemapNrPages {
    fn name(&self) -> &str {
        "pagemap-nr-pages"
    }
    fn convert(&self, input: &Path, output: &Path, _from: &str, _to: &str) -> Result<(), ConvertError> {
        fsutil::copy_dir(input, output)?;
        for name in crit::file_names(output)?.into_iter().filter(|n| n.starts_with("pagemap-")) {
            let path = output.join(&name);
            // Never write through a link: it may point out of the image dir.
            if !std::fs::symlink_metadata(&path)?.file_type().is_file() {
                return Err(ConvertError::NotAFile { name });
            }
            let data = fsutil::read_bounded(&path, 1 << 30)
                .map_err(|error| ConvertError::Read { name: name.clone(), error })?;
            let img = rewrite_pagemap(&data).map_err(|source| ConvertError::Image { name, source })?;
            // A new file renamed over the copy, never the copy's target.
            fsutil::write_atomic(&path, &img.to_bytes())?;
        }
        Ok(())
    }
    fn under_test(&self) -> bool {
        true
    }
}

/// A 4.2 pagemap file's bytes as 4.1 would have written them.
fn rewrite_pagemap(data: &[u8]) -> Result<ImageFile, images::ImageError> {
    let mut img = ImageFile::parse(data)?;
    images::pagemap_to_4_1(&mut img)?;
    Ok(img)
}

/// Copies the files crit does not decode (pages, tarballs, anything else).
fn copy_raw(input: &Path, output: &Path) -> Result<(), ConvertError> {
    for name in crit::file_names(input)?.into_iter().filter(|n| crit::is_raw(n)) {
        if let Err(source) = std::fs::copy(input.join(&name), output.join(&name)) {
            return Err(ConvertError::Copy { name, source });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::run_step;
    use super::*;

    #[test]
    fn identity_copies_every_image() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join("pagemap-1.img"), [1, 2, 3]).unwrap();
        let rec = run_step(&Identity, "criu-3.17.1", "criu-3.17.1", &a, &b);
        assert!(rec.ok, "{rec:?}");
        assert_eq!(std::fs::read(b.join("pagemap-1.img")).unwrap(), [1, 2, 3]);
        let rec = run_step(&Identity, "x", "x", &dir.path().join("missing"), &dir.path().join("c"));
        assert!(!rec.ok);
        assert!(rec.message.unwrap().contains("identity conversion of"));
    }

    #[test]
    fn pagemap_converter_never_writes_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let (a, outside) = (dir.path().join("a"), dir.path().join("outside.img"));
        std::fs::create_dir(&a).unwrap();
        std::fs::write(&outside, "precious").unwrap();
        std::os::unix::fs::symlink(&outside, a.join("pagemap-1.img")).unwrap();
        let rec = run_step(&PagemapNrPages, "criu-4.2", "criu-4.1", &a, &dir.path().join("b"));
        assert!(!rec.ok && rec.message.unwrap().contains("expected a regular file"));
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious");
    }

    #[test]
    fn a_pagemap_that_does_not_parse_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join("pagemap-7.img"), [1, 2]).unwrap();
        let rec = run_step(&PagemapNrPages, "criu-4.2", "criu-4.1", &a, &dir.path().join("b"));
        assert_eq!(rec.message.as_deref(), Some("pagemap-7.img: shorter than its magic"), "{rec:?}");
    }
}

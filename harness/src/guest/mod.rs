//! What a guest boots with: its initramfs (init, engine, workloads), the
//! cpio writer, ELF checks, kernel modules, and the virtme-ng alternative.

pub mod cpio;
pub mod elf;
pub mod hostlib;
pub mod image;
pub mod layout;
pub mod modules;
pub mod virtme;

//! Just enough of the ELF64 little-endian format to read program headers
//! and notes (static-binary checks, PVH entry detection).

/// `PT_INTERP`: the binary names a dynamic loader.
pub const PT_INTERP: u32 = 3;
/// `PT_NOTE`: a segment of notes.
pub const PT_NOTE: u32 = 4;

pub fn u16_at(data: &[u8], o: usize) -> Option<usize> {
    data.get(o..o.checked_add(2)?).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
}

pub fn u32_at(data: &[u8], o: usize) -> Option<u32> {
    data.get(o..o.checked_add(4)?).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

pub fn u64_at(data: &[u8], o: usize) -> Option<usize> {
    data.get(o..o.checked_add(8)?).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
}

/// `EM_X86_64`.
const EM_X86_64: usize = 62;
/// Size of an ELF64 file header and of one ELF64 program header.
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;

/// Why a file is not an executable the guests can run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    #[error("not an ELF file")]
    NotElf,
    #[error("expected a 64-bit little-endian ELF (version 1)")]
    Class,
    #[error("machine {0:?}, expected x86-64")]
    Machine(Option<usize>),
    #[error("ELF type {0:?}, expected an executable (EXEC or DYN)")]
    Type(Option<usize>),
    #[error("expected a table of 56-byte program headers")]
    NoProgramHeaders,
    #[error("program headers lie outside the file")]
    HeadersOutside,
    #[error("it names a dynamic loader (PT_INTERP)")]
    Dynamic,
}

/// Why `data` is not a static x86-64 executable the guests can run, if it
/// is not: an x86-64 executable (see [`check_executable`]) with no PT_INTERP.
pub fn check_static_executable(data: &[u8]) -> Result<(), ElfError> {
    check_executable(data)?;
    if segments(data).iter().any(|s| s.kind == PT_INTERP) {
        return Err(ElfError::Dynamic);
    }
    Ok(())
}

/// Why `data` is not an x86-64 executable, static or dynamic, if it is not:
/// ELF64, little endian, current version, x86-64, type EXEC or DYN
/// (static-pie), a program header table inside the file.
pub fn check_executable(data: &[u8]) -> Result<(), ElfError> {
    if data.len() < EHDR_SIZE || !data.starts_with(b"\x7fELF") {
        return Err(ElfError::NotElf);
    }
    if data[4] != 2 || data[5] != 1 || data[6] != 1 {
        return Err(ElfError::Class);
    }
    if u16_at(data, 0x12) != Some(EM_X86_64) {
        return Err(ElfError::Machine(u16_at(data, 0x12)));
    }
    if !matches!(u16_at(data, 0x10), Some(2 | 3)) {
        return Err(ElfError::Type(u16_at(data, 0x10)));
    }
    let (phoff, phentsize, phnum) = (u64_at(data, 0x20), u16_at(data, 0x36), u16_at(data, 0x38));
    let (Some(phoff), Some(PHDR_SIZE), Some(phnum @ 1..)) = (phoff, phentsize, phnum) else {
        return Err(ElfError::NoProgramHeaders);
    };
    let end = phnum.checked_mul(PHDR_SIZE).and_then(|n| n.checked_add(phoff));
    if end.is_none_or(|end| end > data.len()) {
        return Err(ElfError::HeadersOutside);
    }
    Ok(())
}

/// One program header: its type, file offset and size in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub kind: u32,
    pub offset: usize,
    pub size: usize,
}

/// The program headers that can be read (a truncated table ends early).
pub fn segments(data: &[u8]) -> Vec<Segment> {
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(data, 0x20), u16_at(data, 0x36), u16_at(data, 0x38))
    else {
        return Vec::new();
    };
    (0..phnum)
        .map_while(|i| {
            let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
            Some(Segment {
                kind: u32_at(data, ph)?,
                offset: u64_at(data, ph.checked_add(8)?)?,
                size: u64_at(data, ph.checked_add(32)?)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 x86-64 executable header with `phnum` PT_LOAD headers.
    fn elf(kind: u16, phnum: u16) -> Vec<u8> {
        let mut d = vec![0u8; EHDR_SIZE + usize::from(phnum) * PHDR_SIZE];
        d[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        d[0x10..0x12].copy_from_slice(&kind.to_le_bytes());
        d[0x12..0x14].copy_from_slice(&62u16.to_le_bytes());
        d[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        d[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        d[0x38..0x3a].copy_from_slice(&phnum.to_le_bytes());
        for i in 0..usize::from(phnum) {
            d[64 + i * 56] = 1; // PT_LOAD
        }
        d
    }

    #[test]
    fn static_executables_are_checked_fully() {
        assert_eq!(check_static_executable(&elf(2, 2)), Ok(()));
        assert_eq!(check_static_executable(&elf(3, 1)), Ok(()));
        assert!(check_static_executable(b"\x7fELF\x02\x01").unwrap_err().to_string().contains("not an ELF"));
        assert!(check_static_executable(&elf(1, 1)).unwrap_err().to_string().contains("EXEC or DYN"));
        let mut arm = elf(2, 1);
        arm[0x12] = 183;
        assert!(check_static_executable(&arm).unwrap_err().to_string().contains("x86-64"));
        let mut be = elf(2, 1);
        be[5] = 2;
        assert!(check_static_executable(&be).unwrap_err().to_string().contains("little-endian"));
        let mut cut = elf(2, 3);
        cut.truncate(64 + 56);
        assert!(check_static_executable(&cut).unwrap_err().to_string().contains("outside the file"));
        let mut far = elf(2, 1);
        far[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(check_static_executable(&far).unwrap_err().to_string().contains("outside the file"));
        let mut dynamic = elf(2, 2);
        dynamic[64 + 56] = PT_INTERP as u8;
        assert!(check_static_executable(&dynamic).unwrap_err().to_string().contains("PT_INTERP"));
        assert!(check_static_executable(&elf(2, 0)).is_err());
    }
}

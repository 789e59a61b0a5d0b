//! Just enough of the ELF64 little-endian format to read program headers
//! and notes (static-binary checks, PVH entry detection).

/// `PT_INTERP`: the binary names a dynamic loader.
pub const PT_INTERP: u32 = 3;
/// `PT_NOTE`: a segment of notes.
pub const PT_NOTE: u32 = 4;

pub fn u16_at(data: &[u8], o: usize) -> Option<usize> {
    data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
}

pub fn u32_at(data: &[u8], o: usize) -> Option<u32> {
    data.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

pub fn u64_at(data: &[u8], o: usize) -> Option<usize> {
    data.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
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
            let ph = phoff + i * phentsize;
            Some(Segment { kind: u32_at(data, ph)?, offset: u64_at(data, ph + 8)?, size: u64_at(data, ph + 32)? })
        })
        .collect()
}

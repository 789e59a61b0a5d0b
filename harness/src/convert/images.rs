//! CRIU image files at the byte level: the framing (`MAGIC [MAGIC2]`, then
//! `{u32 size, protobuf}` records) and the few protobuf fields a built-in
//! converter rewrites. Everything else passes through byte for byte.

/// Why an image file or a protobuf message in it does not parse or convert.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("shorter than its magic")]
    NoMagic,
    #[error("shorter than its two magics")]
    NoMagic2,
    #[error("truncated record size at byte {at}")]
    RecordSize { at: usize },
    #[error("record at byte {at} claims {size} bytes, {left} are left")]
    Record { at: usize, size: usize, left: usize },
    #[error("truncated varint")]
    TruncatedVarint,
    #[error("varint longer than 10 bytes")]
    LongVarint,
    #[error("field {number}: unsupported wire type {wire}")]
    WireType { number: u32, wire: u8 },
    #[error("field {number} runs past the message")]
    FieldPastEnd { number: u32 },
    #[error("field {number} is not a varint")]
    NotVarint { number: u32 },
    /// A pagemap entry whose fields do not parse.
    #[error("pagemap entry {entry}")]
    Entry {
        entry: usize,
        #[source]
        source: Box<ImageError>,
    },
    #[error("pagemap entry {entry}: {pages} pages do not fit 4.1's 32-bit nr_pages")]
    TooManyPages {
        entry: usize,
        pages: u64,
        #[source]
        source: std::num::TryFromIntError,
    },
}

type Result<T, E = ImageError> = std::result::Result<T, E>;

/// Files whose first magic is one of these carry a second, per-kind magic.
const IMG_COMMON_MAGIC: u32 = 0x5456_4319;
const IMG_SERVICE_MAGIC: u32 = 0x5510_5940;

/// An image file split into its magic header and records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFile {
    pub header: Vec<u8>,
    pub records: Vec<Vec<u8>>,
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

impl ImageFile {
    pub fn parse(data: &[u8]) -> Result<ImageFile> {
        let first = u32_at(data, 0).ok_or(ImageError::NoMagic)?;
        let mut at = if first == IMG_COMMON_MAGIC || first == IMG_SERVICE_MAGIC { 8 } else { 4 };
        if data.len() < at {
            return Err(ImageError::NoMagic2);
        }
        let header = data[..at].to_vec();
        let mut records = Vec::new();
        while at < data.len() {
            let size = u32_at(data, at).ok_or(ImageError::RecordSize { at })? as usize;
            let body =
                data.get(at + 4..at + 4 + size).ok_or(ImageError::Record { at, size, left: data.len() - at - 4 })?;
            records.push(body.to_vec());
            at += 4 + size;
        }
        Ok(ImageFile { header, records })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.header.clone();
        for r in &self.records {
            out.extend((r.len() as u32).to_le_bytes());
            out.extend(r);
        }
        out
    }
}

/// One protobuf field: number, wire type and its raw encoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub number: u32,
    pub wire: u8,
    /// The value's bytes as on the wire (length prefix included for type 2).
    pub raw: Vec<u8>,
}

fn read_varint(data: &[u8], at: &mut usize) -> Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *data.get(*at).ok_or(ImageError::TruncatedVarint)?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ImageError::LongVarint)
}

pub fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// Splits a protobuf message into its fields, in wire order.
pub fn fields(msg: &[u8]) -> Result<Vec<Field>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < msg.len() {
        let key = read_varint(msg, &mut at)?;
        let (number, wire) = ((key >> 3) as u32, (key & 7) as u8);
        let start = at;
        match wire {
            0 => {
                read_varint(msg, &mut at)?;
            }
            1 => at += 8,
            2 => {
                let len = read_varint(msg, &mut at)? as usize;
                at += len;
            }
            5 => at += 4,
            wire => return Err(ImageError::WireType { number, wire }),
        }
        let raw = msg.get(start..at).ok_or(ImageError::FieldPastEnd { number })?.to_vec();
        out.push(Field { number, wire, raw });
    }
    Ok(out)
}

pub fn encode(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        out.extend(varint(u64::from(f.number) << 3 | u64::from(f.wire)));
        out.extend(&f.raw);
    }
    out
}

impl Field {
    pub fn varint(number: u32, v: u64) -> Field {
        Field { number, wire: 0, raw: varint(v) }
    }
    pub fn as_u64(&self) -> Result<u64> {
        if self.wire != 0 {
            return Err(ImageError::NotVarint { number: self.number });
        }
        read_varint(&self.raw, &mut 0)
    }
}

/// CRIU 4.2 moved `pagemap_entry.nr_pages` from field 2 (uint32, now
/// `compat_nr_pages`, written as 0) to field 5 (uint64); CRIU 4.1 reads only
/// field 2 (CRIU issue 2847). Rewrites a 4.2 pagemap file the way 4.1 would
/// have written it: field 5's count in field 2, field 5 gone. The first
/// record (`pagemap_head`) is kept as is. Returns the entries rewritten.
pub fn pagemap_to_4_1(image: &mut ImageFile) -> Result<usize> {
    let mut changed = 0;
    for (i, rec) in image.records.iter_mut().enumerate().skip(1) {
        let mut fs = fields(rec).map_err(|e| ImageError::Entry { entry: i, source: Box::new(e) })?;
        let Some(pos) = fs.iter().position(|f| f.number == 5) else { continue };
        let pages = fs.remove(pos).as_u64()?;
        let pages = u32::try_from(pages).map_err(|source| ImageError::TooManyPages { entry: i, pages, source })?;
        match fs.iter_mut().find(|f| f.number == 2) {
            Some(f) => *f = Field::varint(2, u64::from(pages)),
            None => {
                let at = fs.iter().position(|f| f.number > 2).unwrap_or(fs.len());
                fs.insert(at, Field::varint(2, u64::from(pages)));
            }
        }
        *rec = encode(&fs);
        changed += 1;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(vaddr: u64, compat: u32, flags: u32, nr: Option<u64>) -> Vec<u8> {
        let mut fs =
            vec![Field::varint(1, vaddr), Field::varint(2, u64::from(compat)), Field::varint(4, u64::from(flags))];
        if let Some(n) = nr {
            fs.push(Field::varint(5, n));
        }
        encode(&fs)
    }

    fn file(records: Vec<Vec<u8>>) -> Vec<u8> {
        ImageFile { header: [IMG_COMMON_MAGIC.to_le_bytes(), 0x5608_4025u32.to_le_bytes()].concat(), records }
            .to_bytes()
    }

    #[test]
    fn framing_round_trips_and_reports_truncation() {
        let bytes = file(vec![vec![8, 1], entry(0x1000, 3, 2, None)]);
        let img = ImageFile::parse(&bytes).unwrap();
        assert_eq!(img.header.len(), 8);
        assert_eq!(img.records.len(), 2);
        assert_eq!(img.to_bytes(), bytes);
        let e = ImageFile::parse(&bytes[..bytes.len() - 1]).unwrap_err();
        assert_eq!(e.to_string(), "record at byte 14 claims 7 bytes, 6 are left");
    }

    #[test]
    fn pagemap_count_moves_back_to_field_two() {
        let bytes = file(vec![vec![8, 1], entry(0x40_0000, 0, 6, Some(7)), entry(0x7000, 0, 2, Some(1))]);
        let mut img = ImageFile::parse(&bytes).unwrap();
        assert_eq!(pagemap_to_4_1(&mut img).unwrap(), 2);
        assert_eq!(img.records[0], vec![8, 1], "pagemap_head untouched");
        assert_eq!(img.records[1], entry(0x40_0000, 7, 6, None));
        assert_eq!(img.records[2], entry(0x7000, 1, 2, None));
        // A 4.1 image (no field 5) passes unchanged.
        let old = file(vec![vec![8, 1], entry(0x1000, 3, 2, None)]);
        let mut img = ImageFile::parse(&old).unwrap();
        assert_eq!(pagemap_to_4_1(&mut img).unwrap(), 0);
        assert_eq!(img.to_bytes(), old);
        let mut big = ImageFile::parse(&file(vec![vec![], entry(0, 0, 0, Some(1 << 33))])).unwrap();
        let e = crate::util::error::chain(&pagemap_to_4_1(&mut big).unwrap_err());
        assert!(e.starts_with("pagemap entry 1: 8589934592 pages do not fit 4.1's 32-bit nr_pages: "), "{e}");
    }

    #[test]
    fn varints_round_trip() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let f = Field::varint(5, v);
            assert_eq!(f.as_u64().unwrap(), v);
            assert_eq!(fields(&encode(std::slice::from_ref(&f))).unwrap(), vec![f]);
        }
    }
}

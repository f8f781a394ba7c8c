//! Reader for R's lazy-load data base (`Rdata.rdb`): a run of records, each a 4-byte big-endian
//! uncompressed length followed by a zlib stream holding one XDR-serialised R object.
//!
//! Only what the Jane Austen package needs is understood: top-level character vectors
//! (`STRSXP`). Other objects are reported as such, never guessed at.

use std::io::Read;

use anyhow::{Context, Result, bail, ensure};
use flate2::read::ZlibDecoder;

/// R's type code of a character vector.
const STRSXP: u32 = 16;
/// R's type code of one string.
const CHARSXP: u32 = 9;
/// The serialised length of `NA_character_`.
const NA_LENGTH: i32 = -1;

/// Decodes every record of a lazy-load data base. Each entry is `Some(lines)` for a character
/// vector (NA elements become empty lines) and `None` for any other kind of object.
pub fn read_records(bytes: &[u8]) -> Result<Vec<Option<Vec<String>>>> {
    let mut records = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        ensure!(bytes.len() - pos >= 4, "truncated record header at byte {pos}");
        let expected = u32::from_be_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]]) as usize;
        let mut decoder = ZlibDecoder::new(&bytes[pos + 4..]);
        let mut raw = Vec::with_capacity(expected);
        decoder.read_to_end(&mut raw).with_context(|| format!("record at byte {pos} is not a zlib stream"))?;
        ensure!(raw.len() == expected, "record at byte {pos}: {} bytes inflated, header says {expected}", raw.len());
        let record = records.len();
        records.push(parse_object(&raw).with_context(|| format!("record {record}"))?);
        pos += 4 + decoder.total_in() as usize;
    }
    Ok(records)
}

/// Parses one serialised object; returns its strings when it is a character vector.
fn parse_object(raw: &[u8]) -> Result<Option<Vec<String>>> {
    let mut r = Xdr { bytes: raw, pos: 0 };
    ensure!(r.take(2)? == b"X\n", "not an XDR-serialised R object");
    let version = r.int()?;
    let _writer = r.int()?;
    let _min_reader = r.int()?;
    match version {
        2 => {}
        3 => {
            let n = r.length()?;
            r.take(n)?; // native encoding name
        }
        v => bail!("unsupported serialisation version {v}"),
    }
    let flags = r.int()? as u32;
    if flags & 0xFF != STRSXP {
        return Ok(None);
    }
    let n = r.length()?;
    let mut lines = Vec::with_capacity(n);
    for i in 0..n {
        let flags = r.int()? as u32;
        ensure!(flags & 0xFF == CHARSXP, "element {i} is not a string (type {})", flags & 0xFF);
        let len = r.int()?;
        if len == NA_LENGTH {
            lines.push(String::new());
            continue;
        }
        let len = usize::try_from(len).with_context(|| format!("element {i} has length {len}"))?;
        let text = r.take(len)?;
        // Austen's text is ASCII/UTF-8; anything else is decoded lossily rather than dropped.
        lines.push(String::from_utf8_lossy(text).into_owned());
    }
    Ok(Some(lines))
}

/// A cursor over big-endian (XDR) data.
struct Xdr<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Xdr<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.with_context(|| format!("object truncated at byte {}", self.pos))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn int(&mut self) -> Result<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A vector length: a non-negative int, or −1 followed by a 64-bit length in two ints.
    fn length(&mut self) -> Result<usize> {
        match self.int()? {
            -1 => {
                let hi = self.int()? as u32 as u64;
                let lo = self.int()? as u32 as u64;
                usize::try_from((hi << 32) | lo).context("vector length does not fit in memory")
            }
            n => usize::try_from(n).with_context(|| format!("negative length {n}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::{Compression, write::ZlibEncoder};

    use super::*;

    /// Serialises a character vector the way R's `serialize(version = 3)` does.
    fn serialise(lines: &[Option<&str>]) -> Vec<u8> {
        let mut out = b"X\n".to_vec();
        for v in [3i32, 0x0004_0201, 0x0003_0500, 5] {
            out.extend(v.to_be_bytes());
        }
        out.extend(b"UTF-8");
        out.extend((STRSXP as i32).to_be_bytes());
        out.extend((lines.len() as i32).to_be_bytes());
        for line in lines {
            out.extend(0x0004_0009i32.to_be_bytes());
            match line {
                Some(s) => {
                    out.extend((s.len() as i32).to_be_bytes());
                    out.extend(s.as_bytes());
                }
                None => out.extend(NA_LENGTH.to_be_bytes()),
            }
        }
        out
    }

    fn record(raw: &[u8]) -> Vec<u8> {
        let mut enc = ZlibEncoder::new(Vec::new(), Compression::default());
        enc.write_all(raw).unwrap();
        let z = enc.finish().unwrap();
        let mut out = (raw.len() as u32).to_be_bytes().to_vec();
        out.extend(z);
        out
    }

    #[test]
    fn reads_consecutive_character_vectors() {
        let mut db = record(&serialise(&[Some("EMMA"), None, Some("Emma Woodhouse, handsome")]));
        db.extend(record(&serialise(&[Some("PERSUASION")])));
        let records = read_records(&db).unwrap();
        assert_eq!(
            records,
            vec![
                Some(vec!["EMMA".to_string(), String::new(), "Emma Woodhouse, handsome".to_string()]),
                Some(vec!["PERSUASION".to_string()]),
            ]
        );
    }

    #[test]
    fn other_objects_are_not_guessed() {
        let mut raw = serialise(&[Some("x")]);
        raw[26] = 13; // INTSXP instead of STRSXP: the low byte of the object header (bytes 23..27)
        assert_eq!(read_records(&record(&raw)).unwrap(), vec![None]);
    }

    #[test]
    fn truncation_and_garbage_are_errors() {
        let db = record(&serialise(&[Some("Emma")]));
        assert!(read_records(&db[..db.len() - 3]).is_err());
        assert!(read_records(&[0, 0, 0, 9, 1, 2, 3]).is_err());
        let mut raw = serialise(&[Some("Emma")]);
        raw.truncate(raw.len() - 2);
        assert!(read_records(&record(&raw)).is_err());
    }
}

//! The IDX format of the MNIST family: a 4-byte magic (two zero bytes, the element type, the
//! number of dimensions), each dimension as a big-endian u32, then the elements in row-major
//! order. Only unsigned bytes (type 0x08) are read: images and labels are both that.

use std::io::Read;

use anyhow::{Context, Result, bail, ensure};

/// The element type code of unsigned bytes.
const UNSIGNED_BYTE: u8 = 0x08;

/// An IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idx {
    /// The dimensions, outermost first.
    pub dims: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<u8>,
}

impl Idx {
    /// Parses IDX bytes, gunzipping them first when they start with the gzip magic.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut raw = Vec::new();
            flate2::read::GzDecoder::new(bytes).read_to_end(&mut raw).context("the gzip stream is broken")?;
            return Self::parse(&raw);
        }
        ensure!(bytes.len() >= 4, "an IDX file starts with 4 magic bytes; this one has {} bytes", bytes.len());
        ensure!(bytes[..2] == [0, 0], "not an IDX file (its magic does not start with two zero bytes)");
        if bytes[2] != UNSIGNED_BYTE {
            bail!("IDX element type 0x{:02x} is not unsigned bytes (0x08)", bytes[2]);
        }
        let rank = usize::from(bytes[3]);
        ensure!(rank >= 1, "an IDX array needs at least one dimension");
        let header = 4 + 4 * rank;
        ensure!(bytes.len() >= header, "the IDX header of {rank} dimensions is cut short");
        let dims: Vec<usize> =
            bytes[4..header].chunks_exact(4).map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize).collect();
        let count = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        let body = bytes.len() - header;
        match count {
            Some(n) if n == body => Ok(Self { dims, data: bytes[header..].to_vec() }),
            _ => bail!("IDX dimensions {dims:?} do not match the {body} bytes that follow the header"),
        }
    }

    /// The IDX bytes of this array (uncompressed).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0, 0, UNSIGNED_BYTE, self.dims.len() as u8];
        for &d in &self.dims {
            out.extend_from_slice(&(d as u32).to_be_bytes());
        }
        out.extend_from_slice(&self.data);
        out
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// Two 2 × 3 images, written by hand.
    fn tiny() -> Vec<u8> {
        let mut b = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3];
        b.extend(0..12u8);
        b
    }

    #[test]
    fn reads_a_tiny_file() {
        let idx = Idx::parse(&tiny()).unwrap();
        assert_eq!(idx.dims, [2, 2, 3]);
        assert_eq!(idx.data, (0..12).collect::<Vec<u8>>());
        assert_eq!(idx.to_bytes(), tiny());
    }

    #[test]
    fn reads_it_gzipped() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tiny()).unwrap();
        assert_eq!(Idx::parse(&gz.finish().unwrap()).unwrap(), Idx::parse(&tiny()).unwrap());
    }

    #[test]
    fn refuses_broken_files() {
        let t = tiny();
        let message = |b: &[u8]| Idx::parse(b).unwrap_err().to_string();
        assert!(message(&t[..t.len() - 1]).contains("do not match the 11 bytes"));
        assert!(message(&t[..10]).contains("cut short"));
        assert!(message(&[0, 0]).contains("4 magic bytes"));
        assert!(message(&[1, 0, 8, 1]).contains("not an IDX file"));
        let mut floats = t.clone();
        floats[2] = 0x0d;
        assert!(message(&floats).contains("0x0d"));
        let mut huge = vec![0, 0, 8, 4];
        huge.extend([0xff; 16]);
        assert!(message(&huge).contains("do not match"));
        assert!(message(&[0x1f, 0x8b, 0, 0]).contains("gzip"));
    }
}

//! The record format: what goes on the wire, byte by byte.
//!
//! ```text
//! record   = length:u16be  sealed                      length = len(sealed), wire size = 2 + length
//! sealed   = AEAD(plain)                               ChaCha20-Poly1305, nonce = record number, 16-byte tag
//! plain    = version:u8  flags:u8  data_len:u16be  data[data_len]  zero padding to the drawn size
//! data     = a slice of the message stream
//! stream   = ( varint(message length)  message bytes )*
//! ```
//!
//! The schedule draws a record's *whole* wire size, `2 + 4 + data + padding + 16`; the engine never
//! emits a byte more or less. The length prefix is the only cleartext: it tells the receiver where
//! a record ends in a TCP byte stream that may split or coalesce records, and it reveals nothing
//! the record's size on the wire does not already show. Everything else, including whether the
//! record is cover, is inside the AEAD, so real and cover records look alike and any change to a
//! byte (the prefix included) fails authentication.
//!
//! A record carries the next `data_len` bytes of the message stream, so small messages share a
//! record and large ones span many. A record may end anywhere in a message, its length varint
//! included (so even a 23-byte record, one data byte, carries any message); the flags say whether
//! the data starts or ends inside a message, and the receiver checks both against its own state.

/// Bytes of the cleartext length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 2;
/// Bytes of the encrypted record header (version, flags, data length).
pub const HEADER_BYTES: usize = 4;
/// Bytes of the AEAD tag.
pub const TAG_BYTES: usize = 16;
/// Framing every record pays: prefix, header and tag.
pub const RECORD_OVERHEAD_BYTES: usize = LENGTH_PREFIX_BYTES + HEADER_BYTES + TAG_BYTES;
/// The smallest record: framing plus one data byte (the smallest useful slot).
pub const MIN_RECORD_BYTES: u32 = RECORD_OVERHEAD_BYTES as u32 + 1;
/// The largest record: a Noise transport message is at most 65,535 bytes, plus the prefix.
pub const MAX_RECORD_BYTES: u32 = 65_535 + LENGTH_PREFIX_BYTES as u32;
/// The record format version in every header.
pub const VERSION: u8 = 1;

/// Record flags (inside the encryption).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags(pub u8);

impl Flags {
    /// No data: the whole record is cover.
    pub const COVER: Flags = Flags(0x01);
    /// The data begins inside a message started in an earlier record (a fragment continues).
    pub const CONTINUES: Flags = Flags(0x02);
    /// The data ends inside a message that the next record continues (more fragments follow).
    pub const MORE: Flags = Flags(0x04);
    /// The sender's last record: it closed after sending everything it accepted.
    pub const CLOSE: Flags = Flags(0x08);
    const KNOWN: u8 = 0x0f;

    /// Whether every flag in `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Set the flags in `other`.
    pub fn insert(&mut self, other: Flags) {
        self.0 |= other.0;
    }
}

/// The decrypted header of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Flags.
    pub flags: Flags,
    /// Bytes of message stream in the record.
    pub data_len: u16,
}

/// Why a decrypted record is malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Shorter than a header.
    #[error("record body of {0} bytes is shorter than the {HEADER_BYTES}-byte header")]
    Short(usize),
    /// An unknown format version.
    #[error("record format version {0} is not supported (this is version {VERSION})")]
    Version(u8),
    /// Flags this version does not define.
    #[error("record flags {0:#04x} include unknown bits")]
    UnknownFlags(u8),
    /// The data length field claims more bytes than the record holds.
    #[error("record data length {data_len} exceeds the {body_len} bytes the record holds")]
    DataLength {
        /// What the header claims.
        data_len: u16,
        /// What the record holds after the header.
        body_len: usize,
    },
    /// A cover record that claims data.
    #[error("cover record claims {0} data bytes")]
    CoverWithData(u16),
}

impl Header {
    /// Write the header into the first [`HEADER_BYTES`] of `out`.
    pub fn write(self, out: &mut [u8]) {
        out[0] = VERSION;
        out[1] = self.flags.0;
        out[2..4].copy_from_slice(&self.data_len.to_be_bytes());
    }

    /// Parse and check a header against the decrypted record `plain` that holds it.
    pub fn parse(plain: &[u8]) -> Result<Header, HeaderError> {
        if plain.len() < HEADER_BYTES {
            return Err(HeaderError::Short(plain.len()));
        }
        if plain[0] != VERSION {
            return Err(HeaderError::Version(plain[0]));
        }
        let flags = Flags(plain[1]);
        if flags.0 & !Flags::KNOWN != 0 {
            return Err(HeaderError::UnknownFlags(flags.0));
        }
        let data_len = u16::from_be_bytes([plain[2], plain[3]]);
        let body_len = plain.len() - HEADER_BYTES;
        if usize::from(data_len) > body_len {
            return Err(HeaderError::DataLength { data_len, body_len });
        }
        if flags.contains(Flags::COVER) && data_len != 0 {
            return Err(HeaderError::CoverWithData(data_len));
        }
        Ok(Header { flags, data_len })
    }
}

/// Bytes of `n` as an LEB128 varint (1 byte below 128, 2 below 16,384, 3 below 2 MiB, ...).
pub fn varint_len(n: u64) -> usize {
    (64 - (n | 1).leading_zeros() as usize).div_ceil(7)
}

/// Append `n` as an LEB128 varint.
pub fn write_varint(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Why a varint could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarintError {
    /// The bytes end inside the varint.
    Incomplete,
    /// More than 10 bytes, or a value beyond `u64`.
    Overflow,
}

/// Read an LEB128 varint from the start of `bytes`: the value and how many bytes it took.
pub fn read_varint(bytes: &[u8]) -> Result<(u64, usize), VarintError> {
    let mut n: u64 = 0;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        let part = u64::from(b & 0x7f);
        if i == 9 && part > 1 {
            return Err(VarintError::Overflow);
        }
        n |= part << (7 * i);
        if b & 0x80 == 0 {
            return Ok((n, i + 1));
        }
    }
    if bytes.len() >= 10 {
        Err(VarintError::Overflow)
    } else {
        Err(VarintError::Incomplete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_round_trip_and_checks() {
        let mut plain = vec![0u8; 10];
        Header {
            flags: Flags::MORE,
            data_len: 6,
        }
        .write(&mut plain);
        assert_eq!(
            Header::parse(&plain).unwrap(),
            Header {
                flags: Flags::MORE,
                data_len: 6
            }
        );
        plain[3] = 7;
        assert_eq!(
            Header::parse(&plain),
            Err(HeaderError::DataLength {
                data_len: 7,
                body_len: 6
            })
        );
        plain[0] = 2;
        assert_eq!(Header::parse(&plain), Err(HeaderError::Version(2)));
        assert_eq!(Header::parse(&plain[..3]), Err(HeaderError::Short(3)));
        let mut cover = vec![VERSION, 0x01, 0, 1, 0];
        assert_eq!(Header::parse(&cover), Err(HeaderError::CoverWithData(1)));
        cover[1] = 0x41;
        assert_eq!(Header::parse(&cover), Err(HeaderError::UnknownFlags(0x41)));
    }

    #[test]
    fn varint_edges() {
        assert_eq!(read_varint(&[0x80; 11]), Err(VarintError::Overflow));
        assert_eq!(read_varint(&[0x80, 0x80]), Err(VarintError::Incomplete));
        assert_eq!(read_varint(&[]), Err(VarintError::Incomplete));
        let mut max = Vec::new();
        write_varint(u64::MAX, &mut max);
        assert_eq!(read_varint(&max), Ok((u64::MAX, 10)));
        let mut too_big = max.clone();
        too_big[9] = 0x02;
        assert_eq!(read_varint(&too_big), Err(VarintError::Overflow));
    }

    proptest! {
        #[test]
        fn varint_round_trips(n: u64) {
            let mut out = Vec::new();
            write_varint(n, &mut out);
            prop_assert_eq!(out.len(), varint_len(n));
            prop_assert_eq!(read_varint(&out), Ok((n, out.len())));
        }
    }
}

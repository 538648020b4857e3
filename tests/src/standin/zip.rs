//! A minimal ZIP writer (stored entries, no compression, no ZIP64) — all a wheel needs — plus the
//! URL-safe base64 that wheel `RECORD` hashes use.

use std::io::{self, Write};

/// One file of an archive.
pub(crate) struct Entry {
    pub name: String,
    pub data: Vec<u8>,
    /// Unix permission bits (e.g. 0o644, 0o755).
    pub mode: u32,
}

/// Writes `entries` as a ZIP archive to `out`.
pub(crate) fn write_zip(out: &mut impl Write, entries: &[Entry]) -> io::Result<()> {
    let too_big = || io::Error::new(io::ErrorKind::InvalidInput, "archive too large for ZIP32");
    let mut offset: u32 = 0;
    let mut central = Vec::new();
    for e in entries {
        let crc = crc32(&e.data);
        let size = u32::try_from(e.data.len()).map_err(|_| too_big())?;
        let name = e.name.as_bytes();
        let name_len = u16::try_from(name.len()).map_err(|_| too_big())?;
        // Fixed DOS time: 1980-01-01 00:00 keeps archives reproducible.
        let (dos_time, dos_date): (u16, u16) = (0, (1 << 5) | 1);
        let mut local = Vec::with_capacity(30 + name.len());
        local.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        local.extend_from_slice(&20u16.to_le_bytes()); // version needed
        local.extend_from_slice(&0x0800u16.to_le_bytes()); // flags: UTF-8 names
        local.extend_from_slice(&0u16.to_le_bytes()); // method: stored
        local.extend_from_slice(&dos_time.to_le_bytes());
        local.extend_from_slice(&dos_date.to_le_bytes());
        local.extend_from_slice(&crc.to_le_bytes());
        local.extend_from_slice(&size.to_le_bytes());
        local.extend_from_slice(&size.to_le_bytes());
        local.extend_from_slice(&name_len.to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes()); // extra length
        local.extend_from_slice(name);
        out.write_all(&local)?;
        out.write_all(&e.data)?;

        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&((3u16 << 8) | 20).to_le_bytes()); // made by: Unix, 2.0
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&0x0800u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&dos_time.to_le_bytes());
        central.extend_from_slice(&dos_date.to_le_bytes());
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&name_len.to_le_bytes());
        central.extend_from_slice(&[0; 8]); // extra, comment, disk number, internal attributes
        central.extend_from_slice(&((0o100000 | e.mode) << 16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name);

        let grown = u64::from(offset) + local.len() as u64 + e.data.len() as u64;
        offset = u32::try_from(grown).map_err(|_| too_big())?;
    }
    let count = u16::try_from(entries.len()).map_err(|_| too_big())?;
    let central_len = u32::try_from(central.len()).map_err(|_| too_big())?;
    out.write_all(&central)?;
    let mut end = Vec::with_capacity(22);
    end.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    end.extend_from_slice(&[0; 4]); // disk numbers
    end.extend_from_slice(&count.to_le_bytes());
    end.extend_from_slice(&count.to_le_bytes());
    end.extend_from_slice(&central_len.to_le_bytes());
    end.extend_from_slice(&offset.to_le_bytes());
    end.extend_from_slice(&0u16.to_le_bytes()); // comment length
    out.write_all(&end)
}

/// CRC-32 (IEEE), as ZIP uses it.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        t
    });
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// URL-safe base64 without padding (PEP 376/427 `RECORD` hashes).
pub(crate) fn b64_urlsafe_nopad(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_and_base64_match_known_values() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(b64_urlsafe_nopad(b""), "");
        assert_eq!(b64_urlsafe_nopad(b"f"), "Zg");
        assert_eq!(b64_urlsafe_nopad(b"fo"), "Zm8");
        assert_eq!(b64_urlsafe_nopad(b"foo"), "Zm9v");
        assert_eq!(b64_urlsafe_nopad(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn archive_ends_with_a_central_directory() {
        let mut buf = Vec::new();
        let e = Entry {
            name: "a.txt".into(),
            data: b"hi".to_vec(),
            mode: 0o644,
        };
        write_zip(&mut buf, &[e]).unwrap();
        assert_eq!(&buf[..4], b"PK\x03\x04");
        assert_eq!(&buf[buf.len() - 22..buf.len() - 18], b"PK\x05\x06");
    }
}

//! The on-disk format of the file event log's segment files: header, record framing, and the
//! recovery scan that runs when a partition is opened.
//!
//! A segment file is a [`HEADER_LEN`]-byte header (magic, format version, base offset) followed
//! by frames. A frame is `len: u32 LE`, `crc32(body): u32 LE`, then `len` bytes of body:
//! `offset: i64`, `timestamp_ms: i64`, the key, the payload and the headers, each length
//! prefixed (`u32 LE`). Offsets inside a segment are consecutive from the base offset.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Opens every segment file.
pub(super) const MAGIC: &[u8; 8] = b"AUDITLOG";
/// Format version written into new segment files; files of a newer version are refused.
pub(super) const SEGMENT_VERSION: u32 = 1;
/// Magic, version, reserved word, base offset.
pub(super) const HEADER_LEN: u64 = 24;
/// Frame prefix: length and checksum.
pub(super) const FRAME_PREFIX: usize = 8;
/// Smallest valid body: offset, timestamp and three empty length prefixes.
const MIN_BODY: usize = 8 + 8 + 4 + 4 + 4;
/// Largest body accepted when reading; a larger length prefix is damage, not a record.
pub(super) const MAX_BODY: usize = 64 << 20;
/// Bytes between two entries of a segment's sparse offset index: a read seeks to the entry at
/// or below its offset and scans at most this much. Smaller costs memory, larger costs reads.
pub(super) const INDEX_INTERVAL_BYTES: u64 = 16 * 1024;

/// A decoded record body.
#[derive(Debug)]
pub(super) struct Body {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// What a recovery scan found in one segment.
#[derive(Debug)]
pub(super) struct Scanned {
    /// Bytes of valid data (header included).
    pub len: u64,
    /// The offset the next record would get.
    pub next: i64,
    /// Sparse index: `(offset, byte position)` pairs, increasing.
    pub index: Vec<(i64, u64)>,
}

/// File name of the segment starting at `base`.
pub(super) fn file_name(base: i64) -> String {
    format!("{base:020}.seg")
}

/// The base offset a segment file name encodes.
pub(super) fn parse_file_name(name: &str) -> Option<i64> {
    name.strip_suffix(".seg").filter(|s| s.len() == 20).and_then(|s| s.parse().ok())
}

/// The header of a segment starting at `base`.
pub(super) fn header(base: i64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&base.to_le_bytes());
    h
}

/// Creates a new, empty segment file and makes it durable (file and directory).
pub(super) fn create(dir: &Path, base: i64) -> io::Result<PathBuf> {
    let path = dir.join(file_name(base));
    let mut file = File::options().write(true).create_new(true).open(&path)?;
    file.write_all(&header(base))?;
    file.sync_all()?;
    super::files::sync_dir(dir)?;
    Ok(path)
}

/// Appends the frame of one record to `out`.
pub(super) fn encode(out: &mut Vec<u8>, offset: i64, timestamp_ms: i64, record: &crate::OutgoingRecord) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_PREFIX]);
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&timestamp_ms.to_le_bytes());
    for field in [record.key.as_bytes(), record.payload.as_slice()] {
        put_bytes(out, field);
    }
    put_len(out, record.headers.len());
    for (name, value) in &record.headers {
        put_bytes(out, name.as_bytes());
        put_bytes(out, value);
    }
    let body_len = out.len() - start - FRAME_PREFIX;
    let crc = crc32fast::hash(&out[start + FRAME_PREFIX..]);
    out[start..start + 4].copy_from_slice(&len_u32(body_len).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Encoded size of a record's frame (appends check it against the limit first).
pub(super) fn frame_len(record: &crate::OutgoingRecord) -> usize {
    let headers: usize = record.headers.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    FRAME_PREFIX + MIN_BODY + record.key.len() + record.payload.len() + headers
}

fn len_u32(len: usize) -> u32 {
    // Records are limited far below 4 GiB before they are encoded.
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&len_u32(len).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Reads a body; `None` when it is malformed.
pub(super) fn decode(body: &[u8]) -> Option<Body> {
    let mut r = Cursor(body);
    let offset = i64::from_le_bytes(r.take(8)?.try_into().ok()?);
    let timestamp_ms = i64::from_le_bytes(r.take(8)?.try_into().ok()?);
    let key = r.bytes()?.to_vec();
    let payload = r.bytes()?.to_vec();
    let count = r.len()?;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let name = String::from_utf8(r.bytes()?.to_vec()).ok()?;
        headers.push((name, r.bytes()?.to_vec()));
    }
    r.0.is_empty().then_some(Body { offset, timestamp_ms, key, payload, headers })
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn len(&mut self) -> Option<usize> {
        let raw = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
        usize::try_from(raw).ok()
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }
}

/// Outcome of reading one frame.
pub(super) enum Frame {
    /// A valid record, and the frame's total size.
    Record(Body, u64),
    /// Clean end of data.
    End,
    /// The data ends inside the frame (a torn write).
    Torn,
    /// The frame is damaged; why.
    Bad(String),
}

/// Reads the next frame from `reader`.
pub(super) fn read_frame(reader: &mut impl Read) -> io::Result<Frame> {
    let mut prefix = [0u8; FRAME_PREFIX];
    match read_full(reader, &mut prefix)? {
        0 => return Ok(Frame::End),
        n if n < FRAME_PREFIX => return Ok(Frame::Torn),
        _ => {}
    }
    let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    let crc = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
    if prefix == [0; FRAME_PREFIX] {
        return Ok(Frame::Bad("zeroed frame".into()));
    }
    if !(MIN_BODY..=MAX_BODY).contains(&len) {
        return Ok(Frame::Bad(format!("impossible record length {len}")));
    }
    let mut body = vec![0u8; len];
    if read_full(reader, &mut body)? < len {
        return Ok(Frame::Torn);
    }
    if crc32fast::hash(&body) != crc {
        return Ok(Frame::Bad("checksum mismatch".into()));
    }
    match decode(&body) {
        Some(decoded) => Ok(Frame::Record(decoded, (FRAME_PREFIX + len) as u64)),
        None => Ok(Frame::Bad("malformed record body".into())),
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Checks the header of the segment at `path`, expected to start at `base`.
fn check_header(path: &Path, file: &mut File, base: i64) -> Result<(), String> {
    let mut h = [0u8; HEADER_LEN as usize];
    file.read_exact(&mut h).map_err(|e| format!("segment {}: reading the header: {e}", path.display()))?;
    if &h[..8] != MAGIC {
        return Err(format!("segment {} is not an auditlog segment file (bad magic)", path.display()));
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version > SEGMENT_VERSION {
        return Err(format!(
            "segment {} has format version {version}, newer than the supported {SEGMENT_VERSION}: upgrade auditlog",
            path.display()
        ));
    }
    let stored = i64::from_le_bytes([h[16], h[17], h[18], h[19], h[20], h[21], h[22], h[23]]);
    if stored != base {
        return Err(format!("segment {} says it starts at offset {stored}, its name says {base}", path.display()));
    }
    Ok(())
}

/// Validates every frame of a segment and builds its sparse index. In the last segment of a
/// partition (`is_last`), a torn final frame or a zeroed tail (an unacknowledged write cut by
/// a crash) is truncated away; anything else that is damaged is an error naming the file.
pub(super) fn scan(path: &Path, base: i64, is_last: bool) -> Result<Scanned, String> {
    let ctx = |e: io::Error| format!("segment {}: {e}", path.display());
    let mut file = File::options().read(true).write(is_last).open(path).map_err(ctx)?;
    let file_len = file.metadata().map_err(ctx)?.len();
    if file_len < HEADER_LEN && is_last {
        // Created but never completed, so never acknowledged anything: start it again.
        file.set_len(0).map_err(ctx)?;
        file.write_all(&header(base)).map_err(ctx)?;
        file.sync_all().map_err(ctx)?;
        return Ok(Scanned { len: HEADER_LEN, next: base, index: Vec::new() });
    }
    check_header(path, &mut file, base)?;
    let mut reader = BufReader::with_capacity(256 * 1024, &mut file);
    let (mut pos, mut next, mut index) = (HEADER_LEN, base, Vec::new());
    let mut last_indexed: Option<u64> = None;
    loop {
        let frame = read_frame(&mut reader).map_err(ctx)?;
        match frame {
            Frame::End => break,
            Frame::Record(body, size) => {
                if body.offset != next {
                    return Err(format!(
                        "segment {} is corrupt at byte {pos}: record offset {} where {next} was expected",
                        path.display(),
                        body.offset
                    ));
                }
                if last_indexed.is_none_or(|at| pos - at >= INDEX_INTERVAL_BYTES) {
                    index.push((next, pos));
                    last_indexed = Some(pos);
                }
                next += 1;
                pos += size;
            }
            Frame::Torn if is_last => break,
            Frame::Bad(_) if is_last && zero_from(reader.get_mut(), pos, file_len).map_err(ctx)? => break,
            Frame::Torn => return Err(format!("segment {} is truncated at byte {pos}", path.display())),
            Frame::Bad(why) => return Err(format!("segment {} is corrupt at byte {pos}: {why}", path.display())),
        }
    }
    drop(reader);
    if pos < file_len {
        tracing::warn!(segment = %path.display(), at = pos, dropped_bytes = file_len - pos, "truncating a torn, unacknowledged tail");
        file.set_len(pos).map_err(ctx)?;
        file.sync_all().map_err(ctx)?;
    }
    Ok(Scanned { len: pos, next, index })
}

/// Whether every byte of `file` from `from` to `len` is zero.
fn zero_from(file: &mut File, from: u64, len: u64) -> io::Result<bool> {
    file.seek(SeekFrom::Start(from))?;
    let mut reader = BufReader::new(file.take(len.saturating_sub(from)));
    let mut buf = [0u8; 8192];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(true);
        }
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_damage_is_detected() {
        let record = crate::OutgoingRecord {
            topic: "t".into(),
            key: "k".into(),
            payload: b"payload".to_vec(),
            headers: vec![("h".into(), b"v".to_vec())],
        };
        let mut out = Vec::new();
        encode(&mut out, 7, 42, &record);
        assert_eq!(out.len(), frame_len(&record));
        match read_frame(&mut out.as_slice()).ok() {
            Some(Frame::Record(body, size)) => {
                assert_eq!((body.offset, body.timestamp_ms, size as usize), (7, 42, out.len()));
                assert_eq!((body.key, body.payload, body.headers), (b"k".to_vec(), b"payload".to_vec(), record.headers));
            }
            _ => panic!("frame did not decode"),
        }
        assert!(matches!(read_frame(&mut &out[..out.len() - 1]), Ok(Frame::Torn)));
        let last = out.len() - 1;
        out[last] ^= 1;
        assert!(matches!(read_frame(&mut out.as_slice()), Ok(Frame::Bad(_))));
        assert!(decode(&[1, 2, 3]).is_none());
    }

    #[test]
    fn file_names_sort_by_base_offset() {
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert!(file_name(9) < file_name(10));
        assert_eq!(parse_file_name("x.seg"), None);
    }
}

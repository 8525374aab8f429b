//! Reading a dump as chunks of whole lines.
//!
//! The input (plain, `.gz` or `.zst`, chosen by extension) is read sequentially and cut at
//! newline boundaries into chunks of about `chunk_size` bytes; each chunk knows the number of
//! its first line so that chunks can be parsed in parallel and still name their lines. A line
//! longer than [`MAX_LINE`] is never held in memory whole: it is skipped and reported.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The longest line accepted: 16 MiB.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// At most this many parsed chunks' buffers are kept for reuse.
const MAX_SPARE: usize = 64;

/// A piece of the input, in order.
#[derive(Debug)]
pub enum Chunk {
    /// Whole lines (the last may lack its newline at the end of the input).
    Lines { first_line: u64, bytes: Vec<u8> },
    /// A line over [`MAX_LINE`] bytes, skipped.
    TooLong { line: u64, bytes: u64 },
}

/// Reads a dump chunk by chunk.
pub struct DumpReader {
    path: PathBuf,
    inner: Box<dyn Read + Send>,
    chunk_size: usize,
    buf: Vec<u8>,
    next_line: u64,
    eof: bool,
    consumed: Arc<AtomicU64>,
    /// Buffers of chunks already parsed, given back to hold the next ones: each new chunk
    /// would otherwise be fresh memory, which the kernel must fault in and zero.
    spare: Vec<Vec<u8>>,
}

/// The compression of a dump, from its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("gz") => Compression::Gzip,
            Some("zst") => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

impl DumpReader {
    pub fn open(path: &Path, chunk_size: usize) -> io::Result<Self> {
        let file = fs_err::File::open(path)?;
        let consumed = Arc::new(AtomicU64::new(0));
        let counting = Counting { inner: file.into_parts().0, count: consumed.clone() };
        let inner: Box<dyn Read + Send> = match Compression::from_path(path) {
            Compression::None => Box::new(counting),
            Compression::Gzip => {
                Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, counting)))
            }
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(counting)?),
        };
        Ok(Self::from_reader(path, inner, chunk_size, consumed))
    }

    /// A reader over any byte stream; `consumed` counts the bytes taken from the source.
    pub fn from_reader(path: &Path, inner: Box<dyn Read + Send>, chunk_size: usize, consumed: Arc<AtomicU64>) -> Self {
        Self {
            path: path.to_owned(),
            inner,
            chunk_size: chunk_size.max(1),
            buf: Vec::new(),
            next_line: 1,
            eof: false,
            consumed,
            spare: Vec::new(),
        }
    }

    /// Gives back the bytes of a parsed chunk, to be filled again.
    pub fn recycle(&mut self, mut bytes: Vec<u8>) {
        if self.spare.len() < MAX_SPARE && bytes.capacity() <= 2 * self.chunk_size.max(1 << 16) {
            bytes.clear();
            self.spare.push(bytes);
        }
    }

    /// Bytes consumed from the file so far (compressed bytes for compressed input).
    pub fn progress(&self) -> Arc<AtomicU64> {
        self.consumed.clone()
    }

    pub fn next_chunk(&mut self) -> io::Result<Option<Chunk>> {
        let mut want = self.chunk_size;
        loop {
            self.fill(want)?;
            if self.buf.is_empty() {
                return Ok(None);
            }
            if let Some(pos) = memchr::memrchr(b'\n', &self.buf) {
                // The partial line after the last newline starts the next buffer.
                let mut rest = self.spare.pop().unwrap_or_default();
                rest.extend_from_slice(&self.buf[pos + 1..]);
                self.buf.truncate(pos + 1);
                let bytes = std::mem::replace(&mut self.buf, rest);
                let first_line = self.next_line;
                self.next_line += memchr::memchr_iter(b'\n', &bytes).count() as u64;
                return Ok(Some(Chunk::Lines { first_line, bytes }));
            }
            if self.eof {
                let bytes = std::mem::take(&mut self.buf);
                let first_line = self.next_line;
                self.next_line += 1;
                return Ok(Some(Chunk::Lines { first_line, bytes }));
            }
            if self.buf.len() > MAX_LINE {
                return self.skip_long_line().map(Some);
            }
            // One line longer than a chunk: read on until it ends.
            want = self.buf.len() + self.chunk_size;
        }
    }

    /// Skips the rest of the current line, which is already known to be too long.
    fn skip_long_line(&mut self) -> io::Result<Chunk> {
        let line = self.next_line;
        let mut skipped = self.buf.len() as u64;
        self.buf.clear();
        loop {
            self.fill(self.chunk_size)?;
            match memchr::memchr(b'\n', &self.buf) {
                Some(pos) => {
                    skipped += pos as u64;
                    self.buf.drain(..=pos);
                    break;
                }
                None => {
                    skipped += self.buf.len() as u64;
                    self.buf.clear();
                    if self.eof {
                        break;
                    }
                }
            }
        }
        self.next_line += 1;
        Ok(Chunk::TooLong { line, bytes: skipped })
    }

    /// Reads until the buffer holds `want` bytes or the input ends.
    fn fill(&mut self, want: usize) -> io::Result<()> {
        if self.buf.len() >= want || self.eof {
            return Ok(());
        }
        let missing = (want - self.buf.len()) as u64;
        self.buf.reserve(missing as usize);
        // `read_to_end` on a `take` fills spare capacity without zeroing it first.
        let got = (&mut self.inner)
            .take(missing)
            .read_to_end(&mut self.buf)
            .map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", self.path.display())))?;
        if (got as u64) < missing {
            self.eof = true;
        }
        Ok(())
    }
}

/// Reads chunks on a thread of its own, `depth` chunks ahead of their consumer, so that
/// reading and decompressing overlap parsing.
pub struct ReadAhead {
    chunks: std::sync::mpsc::Receiver<io::Result<Chunk>>,
    /// Parsed chunks' buffers, back to the reader thread.
    spent: std::sync::mpsc::Sender<Vec<u8>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReadAhead {
    pub fn spawn(mut reader: DumpReader, depth: usize) -> Self {
        let (tx, chunks) = std::sync::mpsc::sync_channel(depth.max(1));
        let (spent, returned) = std::sync::mpsc::channel::<Vec<u8>>();
        let thread = std::thread::Builder::new()
            .name("ferry-reader".to_owned())
            .spawn(move || {
                loop {
                    for bytes in returned.try_iter() {
                        reader.recycle(bytes);
                    }
                    let next = reader.next_chunk().transpose();
                    let stop = !matches!(next, Some(Ok(_)));
                    if let Some(item) = next
                        && tx.send(item).is_err()
                    {
                        return;
                    }
                    if stop {
                        return;
                    }
                }
            })
            .expect("a reader thread can be started");
        Self { chunks, spent, thread: Some(thread) }
    }

    /// Gives a parsed chunk's buffer back to the reader, to hold a later chunk.
    pub fn recycle(&self, chunk: Chunk) {
        if let Chunk::Lines { bytes, .. } = chunk {
            // The reader may have finished; the buffer is then simply freed.
            let _ = self.spent.send(bytes);
        }
    }

    /// The next chunk, in input order; `None` at the end of the input.
    pub fn next_chunk(&mut self) -> io::Result<Option<Chunk>> {
        match self.chunks.recv() {
            Ok(item) => item.map(Some),
            Err(_) => {
                if let Some(t) = self.thread.take() {
                    t.join().map_err(|_| io::Error::other("the reader thread panicked"))?;
                }
                Ok(None)
            }
        }
    }
}

/// Counts the bytes read through it, for progress.
struct Counting {
    inner: File,
    count: Arc<AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(input: &[u8], chunk_size: usize) -> DumpReader {
        DumpReader::from_reader(
            Path::new("mem"),
            Box::new(io::Cursor::new(input.to_vec())),
            chunk_size,
            Arc::new(AtomicU64::new(0)),
        )
    }

    fn chunks(input: &[u8], chunk_size: usize) -> Vec<Chunk> {
        let mut r = reader(input, chunk_size);
        let mut out = Vec::new();
        while let Some(c) = r.next_chunk().unwrap() {
            out.push(c);
        }
        out
    }

    fn lines(chunks: &[Chunk]) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        for c in chunks {
            if let Chunk::Lines { first_line, bytes } = c {
                let text = String::from_utf8_lossy(bytes);
                for (i, l) in text.split_terminator('\n').enumerate() {
                    out.push((first_line + i as u64, l.to_owned()));
                }
            }
        }
        out
    }

    #[test]
    fn line_numbers_survive_any_chunk_size() {
        let input = b"a\nbb\n\nccc\ndddd";
        let expected = lines(&chunks(input, 1 << 20));
        assert_eq!(
            expected,
            [(1, "a".into()), (2, "bb".into()), (3, "".into()), (4, "ccc".into()), (5, "dddd".into())]
        );
        for size in 1..12 {
            assert_eq!(lines(&chunks(input, size)), expected, "chunk size {size}");
        }
    }

    /// Buffers given back (still holding their old lines) hold later chunks exactly.
    #[test]
    fn recycled_buffers_hold_only_their_new_lines() {
        let input: Vec<u8> = (0..200).flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes()).collect();
        let expected = lines(&chunks(&input, 1 << 20));
        for size in [7, 16, 100] {
            let mut r = reader(&input, size);
            let mut seen = Vec::new();
            while let Some(c) = r.next_chunk().unwrap() {
                seen.extend(lines(std::slice::from_ref(&c)));
                if let Chunk::Lines { mut bytes, .. } = c {
                    bytes.extend_from_slice(b"stale\n");
                    r.recycle(bytes);
                }
            }
            assert_eq!(seen, expected, "chunk size {size}");
        }
    }

    #[test]
    fn too_long_lines_are_skipped_without_losing_the_next() {
        let mut input = b"{}\n".to_vec();
        // Far enough past the limit that the reader gives up before it sees the newline.
        let long = MAX_LINE + (3 << 20);
        input.extend(std::iter::repeat_n(b'x', long));
        input.extend(b"\n{\"a\":1}\n");
        let cs = chunks(&input, 1 << 20);
        assert!(cs.iter().any(|c| matches!(c, Chunk::TooLong { line: 2, bytes } if *bytes == long as u64)));
        assert_eq!(lines(&cs), [(1, "{}".into()), (3, "{\"a\":1}".into())]);
    }
}

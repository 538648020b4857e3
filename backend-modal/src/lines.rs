//! Reading a pipe line by line without trusting its line lengths: what the shim writes is
//! derived from what runs in the sandbox, so a line is kept up to a bound and the rest of it is
//! only counted, never buffered.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One line, without its newline: its first bytes, up to the reader's bound.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Line {
    /// The first bytes of the line (at most the bound).
    pub bytes: Vec<u8>,
    /// How many bytes beyond the bound were dropped (0: the line is whole).
    pub dropped: u64,
}

impl Line {
    /// Whether the line was longer than the bound.
    pub(crate) fn is_cut(&self) -> bool {
        self.dropped > 0
    }
}

/// Lines of `inner`, each kept up to `max` bytes.
pub(crate) struct BoundedLines<R> {
    inner: R,
    max: usize,
}

impl<R: AsyncBufRead + Unpin> BoundedLines<R> {
    /// Lines of `inner` kept up to `max` bytes each.
    pub(crate) fn new(inner: R, max: usize) -> Self {
        BoundedLines { inner, max }
    }

    /// The next line; `None` at the end. A last line without a newline is a line too.
    pub(crate) async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        let mut line = Line::default();
        let mut any = false;
        loop {
            let avail = self.inner.fill_buf().await?;
            if avail.is_empty() {
                return Ok(any.then_some(line));
            }
            any = true;
            let (chunk, used, end) = match avail.iter().position(|b| *b == b'\n') {
                Some(i) => (&avail[..i], i + 1, true),
                None => (avail, avail.len(), false),
            };
            let room = self.max.saturating_sub(line.bytes.len());
            let keep = chunk.len().min(room);
            line.bytes.extend_from_slice(&chunk[..keep]);
            line.dropped += (chunk.len() - keep) as u64;
            self.inner.consume(used);
            if end {
                return Ok(Some(line));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncWriteExt, BufReader};

    #[tokio::test]
    async fn long_lines_are_cut_and_counted_not_buffered() {
        let (mut w, r) = tokio::io::duplex(1 << 16);
        let huge = 8usize << 20;
        let writer = tokio::spawn(async move {
            w.write_all(b"short\n").await.unwrap();
            let block = vec![b'x'; 1 << 16];
            for _ in 0..huge / block.len() {
                w.write_all(&block).await.unwrap();
            }
            w.write_all(b"\nafter\nlast without newline").await.unwrap();
        });
        let mut lines = BoundedLines::new(BufReader::new(r), 1000);
        let l = lines.next_line().await.unwrap().unwrap();
        assert_eq!((l.bytes.as_slice(), l.dropped), (&b"short"[..], 0));
        let l = lines.next_line().await.unwrap().unwrap();
        assert!(l.is_cut());
        assert_eq!(l.bytes.len(), 1000, "only the bound is kept");
        assert!(l.bytes.capacity() <= 2000, "{}", l.bytes.capacity());
        assert_eq!(l.dropped, (huge - 1000) as u64);
        let l = lines.next_line().await.unwrap().unwrap();
        assert_eq!(l.bytes, b"after");
        let l = lines.next_line().await.unwrap().unwrap();
        assert_eq!(l.bytes, b"last without newline");
        assert_eq!(lines.next_line().await.unwrap(), None);
        writer.await.unwrap();
    }
}

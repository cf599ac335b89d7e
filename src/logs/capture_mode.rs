//! Capture mode (`stdout_capture_maxbytes > 0`): output between
//! `<!--XSUPERVISOR:BEGIN-->` and `<!--XSUPERVISOR:END-->` becomes a
//! PROCESS_COMMUNICATION event instead of log data.
//!
//! [`CaptureParser`] splits a byte stream into [`Piece`]s: text to log, text
//! inside a capture block, and block ends. It holds back only a trailing
//! partial token (bytes that may be the start of the token the parser waits
//! for), released as soon as the next read shows they are not. supervisord
//! also holds back *any* buffer no longer than the token, so `…END-->after\n`
//! leaves `after\n` unlogged until more output arrives; that quirk is not
//! reproduced. At end of stream the held bytes are released by
//! [`CaptureParser::finish`] (supervisord loses them).
//!
//! [`CaptureBuffer`] is the bounded capture store: it keeps the **last**
//! `capture_maxbytes` bytes of a block.

/// Starts a capture block.
pub const BEGIN_TOKEN: &[u8] = b"<!--XSUPERVISOR:BEGIN-->";
/// Ends a capture block.
pub const END_TOKEN: &[u8] = b"<!--XSUPERVISOR:END-->";

/// One piece of parsed output, borrowed from the parser's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Ordinary output, for the log file.
    Log(&'a [u8]),
    /// Output inside a capture block, for the capture buffer.
    Capture(&'a [u8]),
    /// `END` seen: the capture block is complete.
    End,
}

/// Streaming splitter for capture mode. Holds at most one token's length of
/// input between calls.
#[derive(Debug, Default, Clone)]
pub struct CaptureParser {
    capturing: bool,
    held: Vec<u8>,
}

/// Length of the longest proper prefix of `token` that ends `data`
/// (medusa's `find_prefix_at_end`).
fn prefix_at_end(data: &[u8], token: &[u8]) -> usize {
    (1..token.len()).rev().find(|&l| data.ends_with(&token[..l])).unwrap_or(0)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while let Some(i) = haystack.get(from..)?.iter().position(|&b| b == first) {
        let at = from + i;
        if haystack.get(at..at + needle.len()) == Some(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

impl CaptureParser {
    /// A parser outside any capture block.
    pub fn new() -> CaptureParser {
        CaptureParser::default()
    }

    /// Whether the parser is inside a capture block.
    pub fn capturing(&self) -> bool {
        self.capturing
    }

    fn emit<'a>(&self, data: &'a [u8], out: &mut impl FnMut(Piece<'a>)) {
        if !data.is_empty() {
            out(if self.capturing { Piece::Capture(data) } else { Piece::Log(data) });
        }
    }

    /// Feeds the next chunk read from the pipe; `out` receives the pieces in
    /// stream order.
    pub fn feed(&mut self, data: &[u8], mut out: impl FnMut(Piece<'_>)) {
        let joined;
        let mut cur: &[u8] = if self.held.is_empty() {
            data
        } else {
            let mut buf = std::mem::take(&mut self.held);
            buf.extend_from_slice(data);
            joined = buf;
            &joined
        };
        loop {
            let token = if self.capturing { END_TOKEN } else { BEGIN_TOKEN };
            match find(cur, token) {
                Some(i) => {
                    self.emit(&cur[..i], &mut out);
                    if self.capturing {
                        out(Piece::End);
                    }
                    self.capturing = !self.capturing;
                    cur = &cur[i + token.len()..];
                }
                None => {
                    let keep = prefix_at_end(cur, token);
                    let (now, later) = cur.split_at(cur.len() - keep);
                    self.emit(now, &mut out);
                    self.held = later.to_vec();
                    return;
                }
            }
        }
    }

    /// End of stream: releases held-back bytes in the current mode.
    pub fn finish(&mut self, mut out: impl FnMut(Piece<'_>)) {
        let held = std::mem::take(&mut self.held);
        self.emit(&held, &mut out);
    }
}

/// The bounded store of one capture block.
#[derive(Debug, Clone)]
pub struct CaptureBuffer {
    max: usize,
    data: Vec<u8>,
}

impl CaptureBuffer {
    /// A buffer keeping at most `max` bytes.
    pub fn new(max: usize) -> CaptureBuffer {
        CaptureBuffer { max, data: Vec::new() }
    }

    /// Appends, discarding the oldest bytes beyond the bound.
    pub fn push(&mut self, bytes: &[u8]) {
        if bytes.len() >= self.max {
            self.data.clear();
            self.data.extend_from_slice(&bytes[bytes.len() - self.max..]);
            return;
        }
        let overflow = (self.data.len() + bytes.len()).saturating_sub(self.max);
        self.data.drain(..overflow);
        self.data.extend_from_slice(bytes);
    }

    /// Takes the block's content, leaving the buffer empty.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Owned {
        Log(Vec<u8>),
        Capture(Vec<u8>),
        End,
    }

    /// Runs chunks through a parser, merging adjacent pieces of the same kind
    /// so assertions do not depend on how the parser slices its output.
    fn run(chunks: &[&[u8]], finish: bool) -> Vec<Owned> {
        let mut p = CaptureParser::new();
        let mut v: Vec<Owned> = Vec::new();
        let mut push = |piece: Piece<'_>| match (piece, v.last_mut()) {
            (Piece::Log(d), Some(Owned::Log(prev))) => prev.extend_from_slice(d),
            (Piece::Capture(d), Some(Owned::Capture(prev))) => prev.extend_from_slice(d),
            (Piece::Log(d), _) => v.push(Owned::Log(d.to_vec())),
            (Piece::Capture(d), _) => v.push(Owned::Capture(d.to_vec())),
            (Piece::End, _) => v.push(Owned::End),
        };
        for c in chunks {
            p.feed(c, &mut push);
        }
        if finish {
            p.finish(&mut push);
        }
        v
    }

    fn log(s: &str) -> Owned {
        Owned::Log(s.as_bytes().to_vec())
    }
    fn cap(s: &str) -> Owned {
        Owned::Capture(s.as_bytes().to_vec())
    }

    #[test]
    fn plain_output_passes_through_immediately() {
        assert_eq!(run(&[b"hello\n"], false), vec![log("hello\n")]);
        assert_eq!(run(&[b"a", b"b"], false), vec![log("ab")]);
    }

    #[test]
    fn block_in_one_chunk() {
        let got = run(&[b"before<!--XSUPERVISOR:BEGIN-->payload<!--XSUPERVISOR:END-->after\n"], false);
        // `after\n` is logged at once (supervisord would hold it back).
        assert_eq!(got, vec![log("before"), cap("payload"), Owned::End, log("after\n")]);
    }

    #[test]
    fn tokens_split_across_chunks() {
        let got = run(&[b"x<!--XSUPER", b"VISOR:BEGIN-->pa", b"yload<!--XSUPERVISOR:E", b"ND-->y"], false);
        assert_eq!(got, vec![log("x"), cap("payload"), Owned::End, log("y")]);
    }

    #[test]
    fn partial_token_is_held_only_until_disproved() {
        assert_eq!(run(&[b"abc<!--XSUP"], false), vec![log("abc")]);
        assert_eq!(run(&[b"abc<!--XSUP", b"pose\n"], false), vec![log("abc<!--XSUPpose\n")]);
        // A plain `<` at the end is a possible token start, held then released.
        assert_eq!(run(&[b"a<", b"b"], false), vec![log("a<b")]);
    }

    #[test]
    fn held_bytes_are_released_at_end_of_stream() {
        assert_eq!(run(&[b"abc<!--XSUP"], true), vec![log("abc<!--XSUP")]);
    }

    #[test]
    fn empty_block_and_back_to_back_blocks() {
        let got = run(
            &[b"<!--XSUPERVISOR:BEGIN--><!--XSUPERVISOR:END--><!--XSUPERVISOR:BEGIN-->2<!--XSUPERVISOR:END-->"],
            true,
        );
        assert_eq!(got, vec![Owned::End, cap("2"), Owned::End]);
    }

    #[test]
    fn begin_inside_capture_is_data() {
        let got = run(&[b"<!--XSUPERVISOR:BEGIN-->a<!--XSUPERVISOR:BEGIN-->b<!--XSUPERVISOR:END-->"], true);
        assert_eq!(got, vec![cap("a<!--XSUPERVISOR:BEGIN-->b"), Owned::End]);
    }

    #[test]
    fn capture_buffer_keeps_the_last_bytes() {
        let mut b = CaptureBuffer::new(5);
        b.push(b"abc");
        b.push(b"def");
        assert_eq!(b.take(), b"bcdef");
        b.push(b"0123456789");
        assert_eq!(b.take(), b"56789");
        assert_eq!(b.take(), b"");
    }
}

//! `strip_ansi`: removal of ANSI escape sequences from child output.
//!
//! Same rule as supervisord's `stripEscapes`: from each `ESC [` up to and
//! including the next byte among `HfABCDRsuJKhlpm`, everything is dropped.
//! Unlike supervisord, the state survives chunk boundaries, so a sequence
//! split across two pipe reads is stripped as well.

/// Bytes that end an escape sequence.
const TERMINATORS: &[u8] = b"HfABCDRsuJKhlpm";
const ESC: u8 = 0x1b;

/// Streaming ANSI escape stripper for one output channel.
#[derive(Debug, Default, Clone)]
pub struct AnsiStripper {
    /// Inside `ESC [ …`, waiting for a terminator.
    in_escape: bool,
    /// The previous chunk ended with a lone `ESC`.
    pending_esc: bool,
}

impl AnsiStripper {
    /// A stripper outside any escape sequence.
    pub fn new() -> AnsiStripper {
        AnsiStripper::default()
    }

    /// Appends `data` without escape sequences to `out`.
    pub fn strip(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        if self.pending_esc && !data.is_empty() {
            self.pending_esc = false;
            if data[0] == b'[' {
                self.in_escape = true;
                data = &data[1..];
            } else {
                out.push(ESC);
            }
        }
        while !data.is_empty() {
            if self.in_escape {
                match data.iter().position(|b| TERMINATORS.contains(b)) {
                    Some(i) => {
                        self.in_escape = false;
                        data = &data[i + 1..];
                    }
                    None => return,
                }
            } else {
                match data.iter().position(|&b| b == ESC) {
                    None => {
                        out.extend_from_slice(data);
                        return;
                    }
                    Some(i) => {
                        out.extend_from_slice(&data[..i]);
                        match data.get(i + 1) {
                            Some(b'[') => {
                                self.in_escape = true;
                                data = &data[i + 2..];
                            }
                            Some(_) => {
                                out.push(ESC);
                                data = &data[i + 1..];
                            }
                            None => {
                                self.pending_esc = true;
                                return;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Output still held back at end of stream (a trailing lone `ESC`).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_esc) {
            out.push(ESC);
        }
        self.in_escape = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip_all(chunks: &[&[u8]]) -> Vec<u8> {
        let mut s = AnsiStripper::new();
        let mut out = Vec::new();
        for c in chunks {
            s.strip(c, &mut out);
        }
        s.finish(&mut out);
        out
    }

    #[test]
    fn strips_colour_and_cursor_sequences() {
        assert_eq!(strip_all(&[b"\x1b[1;31mred\x1b[0m plain \x1b[2Jcleared\n"]), b"red plain cleared\n");
    }

    #[test]
    fn matches_supervisord_on_one_chunk() {
        // supervisord: stripEscapes(b'a\x1b[12;3Hb\x1b[?25lc') == b'abc'
        assert_eq!(strip_all(&[b"a\x1b[12;3Hb\x1b[?25lc"]), b"abc");
        // A lone ESC not followed by '[' is kept.
        assert_eq!(strip_all(&[b"a\x1bb"]), b"a\x1bb");
        // An unterminated sequence swallows the rest.
        assert_eq!(strip_all(&[b"a\x1b[12"]), b"a");
    }

    #[test]
    fn sequences_split_across_chunks_are_stripped() {
        assert_eq!(strip_all(&[b"x\x1b", b"[31my"]), b"xy");
        assert_eq!(strip_all(&[b"x\x1b[3", b"1my"]), b"xy");
        assert_eq!(strip_all(&[b"x\x1b", b"zy"]), b"x\x1bzy");
        assert_eq!(strip_all(&[b"x\x1b"]), b"x\x1b");
    }
}

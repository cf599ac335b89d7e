//! Any bytes an event listener writes to its stdout: the protocol reader never
//! panics, and the way the bytes are cut into reads does not change a decision.
//!
//! Input: the listener's output with two control bytes. `\x1e` ends a segment:
//! there the pool sends an event if the listener is READY (as `EventPool::dispatch`
//! does between reads). `\x1f` is a read boundary inside a segment. `\x1d` quotes
//! the next byte, so every byte value can still be output. Each segment is fed
//! three ways — whole, cut at the `\x1f`s, and one byte at a time — and the
//! outcomes and the state after every segment must agree.
#![no_main]

use corral::events::protocol::{ListenerState, Outcome, Protocol};
use libfuzzer_sys::fuzz_target;

const SEGMENT: u8 = 0x1e;
const READ: u8 = 0x1f;
const QUOTE: u8 = 0x1d;

/// Segments, each a list of reads.
fn parse(data: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let mut segments = vec![vec![Vec::new()]];
    let mut bytes = data.iter();
    while let Some(&b) = bytes.next() {
        let segment = segments.last_mut().expect("never empty");
        match b {
            SEGMENT => segments.push(vec![Vec::new()]),
            READ => segment.push(Vec::new()),
            QUOTE => {
                if let Some(&q) = bytes.next() {
                    segment.last_mut().expect("never empty").push(q);
                }
            }
            _ => segment.last_mut().expect("never empty").push(b),
        }
    }
    segments
}

/// Feeds the segments, each cut into reads by `cut`; the outcomes and the
/// state at the end of every segment.
fn run(
    segments: &[Vec<Vec<u8>>],
    cut: impl Fn(&[Vec<u8>]) -> Vec<Vec<u8>>,
) -> Vec<(Vec<Outcome>, ListenerState)> {
    let mut p = Protocol::new("fuzz");
    let mut trace = Vec::new();
    for segment in segments {
        let mut outcomes = Vec::new();
        for read in cut(segment) {
            outcomes.extend(p.feed(&read));
        }
        if p.state() == ListenerState::Ready {
            p.sent();
        }
        trace.push((outcomes, p.state()));
    }
    trace
}

fuzz_target!(|data: &[u8]| {
    let segments = parse(data);
    let whole = run(&segments, |reads| vec![reads.concat()]);
    let as_read = run(&segments, |reads| reads.to_vec());
    let bytewise = run(&segments, |reads| reads.concat().into_iter().map(|b| vec![b]).collect());
    assert_eq!(whole, as_read, "cut at the read boundaries");
    assert_eq!(whole, bytewise, "fed one byte at a time");
});

//! Cutting a serial byte stream into scans. Pure: bytes in, [`Frame`]s out; no I/O, no clock.
//!
//! The rules (README "Connecting a scanner" says the same for operators):
//! - A frame ends with the configured terminator (1 to 8 bytes). The terminator may arrive
//!   split across reads; a frame without its terminator yet is normal and is kept.
//! - **CR/LF.** When the terminator ends with CR, an LF right after it is skipped (a scanner
//!   sending CRLF to a CR-terminated source makes no empty frame and no leading LF). When the
//!   terminator starts with LF, one CR right before it is removed from the frame (a CRLF
//!   scanner on an LF-terminated source).
//! - **Empty frames are ignored**: nothing between two terminators (or nothing left after the
//!   prefix and suffix are stripped) is a line-ending artefact, not a scan.
//! - `strip_prefix` / `strip_suffix` are removed from a frame when present.
//! - **Over-long frames.** As soon as a frame is known to be longer than `max_frame_bytes`
//!   (prefix and suffix included, terminator excluded), it becomes [`Frame::Refused`] with its
//!   first bytes and a reason naming `max_frame_bytes`; the rest of it, up to the next
//!   terminator, is skipped without being kept.
//!
//! Invariants (property-tested below): any chunking of the same stream gives the same frames;
//! at most `max_frame_bytes + terminator length` bytes are held, whatever the input; no input
//! panics.

use crate::sources::driver::Frame;
use crate::workflow::FEEDBACK_SCAN_BYTES;

const CR: u8 = b'\r';
const LF: u8 = b'\n';

/// How the byte stream is cut (the `[[sources]]` framing keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framing {
    pub terminator: Vec<u8>,
    pub strip_prefix: Option<Vec<u8>>,
    pub strip_suffix: Option<Vec<u8>>,
    pub max_frame_bytes: usize,
}

/// The bytes of an over-long frame kept for its feedback: enough for the feedback's escaped
/// scan to show that it was cut.
const HEAD_BYTES: usize = FEEDBACK_SCAN_BYTES + 1;

/// A streaming framer. Feed it what the port gives with [`Framer::push`].
#[derive(Debug)]
pub struct Framer {
    framing: Framing,
    /// The KMP failure function of the terminator: `fail[i]` is the length of the longest
    /// proper prefix of `terminator[..=i]` that is also its suffix.
    fail: Vec<usize>,
    /// How many terminator bytes end the stream so far (always < the terminator's length).
    matched: usize,
    /// The frame so far, with the `matched` terminator bytes at its end. Never longer than
    /// `max_frame_bytes + terminator length` (plus one CR in the CRLF case, see `over_long`).
    buf: Vec<u8>,
    /// Inside an over-long frame, already refused: bytes are matched against the terminator
    /// and dropped.
    skipping: bool,
    /// The last frame ended with a terminator ending in CR: an LF now is skipped.
    skip_lf: bool,
}

impl Framer {
    /// A framer for `framing`. The configuration refuses an empty terminator; should one come
    /// anyway, CR (the default) is used rather than never ending a frame.
    pub fn new(mut framing: Framing) -> Framer {
        if framing.terminator.is_empty() {
            framing.terminator = vec![CR];
        }
        let fail = failure(&framing.terminator);
        let capacity = framing
            .max_frame_bytes
            .saturating_add(framing.terminator.len())
            .saturating_add(1);
        Framer {
            framing,
            fail,
            matched: 0,
            buf: Vec::with_capacity(capacity),
            skipping: false,
            skip_lf: false,
        }
    }

    /// Feed bytes as they came; complete frames are appended to `out`, in order.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Frame>) {
        for &b in bytes {
            self.byte(b, out);
        }
    }

    /// Bytes held for the frame in progress (for the memory bound and the log).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Forget the frame in progress (the device went away); returns how many bytes it had.
    pub fn reset(&mut self) -> usize {
        let had = self.buf.len();
        self.buf.clear();
        self.matched = 0;
        self.skipping = false;
        self.skip_lf = false;
        had
    }

    fn byte(&mut self, b: u8, out: &mut Vec<Frame>) {
        if std::mem::take(&mut self.skip_lf) && b == LF {
            return;
        }
        let complete = self.advance(b);
        if self.skipping {
            if complete {
                self.skipping = false;
                self.ended();
            }
            return;
        }
        self.buf.push(b);
        if complete {
            let content_len = self.buf.len().saturating_sub(self.framing.terminator.len());
            self.buf.truncate(content_len);
            if self.framing.terminator.first() == Some(&LF) && self.buf.last() == Some(&CR) {
                self.buf.pop();
            }
            if self.buf.len() > self.framing.max_frame_bytes {
                out.push(self.refused());
            } else if let Some(frame) = self.scan() {
                out.push(frame);
            }
            self.buf.clear();
            self.ended();
        } else if self.over_long() {
            out.push(self.refused());
            self.buf.clear();
            self.skipping = true;
        }
    }

    /// Move the terminator match on by one byte; true when the terminator is complete.
    fn advance(&mut self, b: u8) -> bool {
        let t = &self.framing.terminator;
        while self.matched > 0 && t.get(self.matched) != Some(&b) {
            self.matched = self
                .fail
                .get(self.matched.saturating_sub(1))
                .copied()
                .unwrap_or(0);
        }
        if t.get(self.matched) == Some(&b) {
            self.matched += 1;
        }
        if self.matched >= t.len() {
            self.matched = 0;
            true
        } else {
            false
        }
    }

    /// A terminator was read: arm the CRLF rule.
    fn ended(&mut self) {
        self.skip_lf = self.framing.terminator.last() == Some(&CR);
    }

    /// Whether the frame in progress is already certainly longer than allowed. Its content is
    /// at least what precedes the partly matched terminator; one byte more is allowed while
    /// that byte is a CR that the LF rule may still remove.
    fn over_long(&self) -> bool {
        let known = self.buf.len().saturating_sub(self.matched);
        let max = self.framing.max_frame_bytes;
        if known <= max {
            return false;
        }
        let cr_may_go = known == max.saturating_add(1)
            && self.framing.terminator.first() == Some(&LF)
            && known
                .checked_sub(1)
                .and_then(|i| self.buf.get(i))
                .is_some_and(|&c| c == CR);
        !cr_may_go
    }

    fn refused(&self) -> Frame {
        let head = self
            .buf
            .get(
                ..self
                    .buf
                    .len()
                    .min(HEAD_BYTES)
                    .min(self.framing.max_frame_bytes + 1),
            )
            .unwrap_or_default()
            .to_vec();
        Frame::Refused {
            head,
            reason: format!(
                "the scan is longer than {} bytes (max_frame_bytes)",
                self.framing.max_frame_bytes
            ),
        }
    }

    /// The finished frame with prefix and suffix stripped; `None` when nothing is left.
    fn scan(&self) -> Option<Frame> {
        let mut s = self.buf.as_slice();
        if let Some(p) = self.framing.strip_prefix.as_deref() {
            s = s.strip_prefix(p).unwrap_or(s);
        }
        if let Some(p) = self.framing.strip_suffix.as_deref() {
            s = s.strip_suffix(p).unwrap_or(s);
        }
        (!s.is_empty()).then(|| Frame::Scan(s.to_vec()))
    }
}

/// The KMP failure function of `t`.
fn failure(t: &[u8]) -> Vec<usize> {
    let mut fail = vec![0; t.len()];
    let mut k = 0;
    for i in 1..t.len() {
        while k > 0 && t.get(k) != t.get(i) {
            k = fail.get(k - 1).copied().unwrap_or(0);
        }
        if t.get(k) == t.get(i) {
            k += 1;
        }
        if let Some(f) = fail.get_mut(i) {
            *f = k;
        }
    }
    fail
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn framing(terminator: &[u8], max: usize) -> Framing {
        Framing {
            terminator: terminator.to_vec(),
            strip_prefix: None,
            strip_suffix: None,
            max_frame_bytes: max,
        }
    }

    fn frames(f: Framing, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut framer = Framer::new(f);
        let mut out = Vec::new();
        for c in chunks {
            framer.push(c, &mut out);
        }
        out
    }

    fn scan(s: &[u8]) -> Frame {
        Frame::Scan(s.to_vec())
    }

    #[test]
    fn a_partial_frame_waits_for_its_terminator() {
        let mut framer = Framer::new(framing(b"\r", 100));
        let mut out = Vec::new();
        framer.push(b"0109501101", &mut out);
        assert!(out.is_empty());
        assert_eq!(framer.pending(), 10);
        framer.push(b"020917\r01", &mut out);
        assert_eq!(out, vec![scan(b"0109501101020917")]);
        assert_eq!(framer.pending(), 2);
    }

    #[test]
    fn a_multi_byte_terminator_split_across_reads() {
        let f = framing(b"\x03\r\n", 100);
        assert_eq!(
            frames(f.clone(), &[b"ab\x03", b"\r", b"\ncd\x03\r\n"]),
            vec![scan(b"ab"), scan(b"cd")]
        );
        // A false start of the terminator stays in the frame.
        assert_eq!(
            frames(f, &[b"a\x03\rb\x03", b"\x03\r\n"]),
            vec![scan(b"a\x03\rb\x03")]
        );
    }

    #[test]
    fn overlapping_terminator_prefixes_are_matched() {
        // "aab" inside "aaab": the KMP fallback must not lose the second 'a'.
        assert_eq!(
            frames(framing(b"aab", 100), &[b"xaa", b"ab", b"yaab"]),
            vec![scan(b"xa"), scan(b"y")]
        );
    }

    #[test]
    fn crlf_on_a_cr_source_makes_no_empty_frame_and_no_leading_lf() {
        let f = framing(b"\r", 100);
        assert_eq!(
            frames(f.clone(), &[b"one\r\ntwo\r", b"\nthree\r\n"]),
            vec![scan(b"one"), scan(b"two"), scan(b"three")]
        );
        // Only the LF right after the CR goes; a later LF is data (and blank lines are ignored).
        assert_eq!(
            frames(f, &[b"a\r\n\nb\r\r\r\n"]),
            vec![scan(b"a"), scan(b"\nb")]
        );
    }

    #[test]
    fn crlf_on_an_lf_source_loses_its_cr() {
        let f = framing(b"\n", 3);
        assert_eq!(
            frames(f, &[b"abc\r", b"\n\r\nab\r\r\n"]),
            vec![scan(b"abc"), scan(b"ab\r")]
        );
    }

    #[test]
    fn empty_frames_are_ignored() {
        let mut f = framing(b"\r", 100);
        f.strip_prefix = Some(b"\x02".to_vec());
        f.strip_suffix = Some(b"\x03".to_vec());
        assert_eq!(
            frames(f, &[b"\r\r\x02\x03\r\x02abc\x03\rabc\r"]),
            vec![scan(b"abc"), scan(b"abc")]
        );
    }

    #[test]
    fn an_over_long_frame_is_refused_at_once_and_its_rest_skipped() {
        let mut framer = Framer::new(framing(b"\r", 4));
        let mut out = Vec::new();
        framer.push(b"abcd", &mut out);
        assert!(out.is_empty());
        framer.push(b"efgh", &mut out);
        assert_eq!(
            out,
            vec![Frame::Refused {
                head: b"abcde".to_vec(),
                reason: "the scan is longer than 4 bytes (max_frame_bytes)".into()
            }]
        );
        assert_eq!(framer.pending(), 0, "the rest is not kept");
        out.clear();
        framer.push(&[b'x'; 10_000], &mut out);
        framer.push(b"\r\nok\r", &mut out);
        assert_eq!(out, vec![scan(b"ok")], "one refusal per frame");
    }

    #[test]
    fn the_head_of_an_over_long_frame_is_bounded() {
        let out = frames(framing(b"\r", 60_000), &[&[b'z'; 70_000]]);
        let [Frame::Refused { head, .. }] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(head.len(), HEAD_BYTES);
    }

    #[test]
    fn a_frame_of_exactly_max_bytes_passes() {
        assert_eq!(
            frames(framing(b"\r\n", 3), &[b"abc\r", b"\n"]),
            vec![scan(b"abc")]
        );
        assert_eq!(frames(framing(b"\n", 3), &[b"abc\r\n"]), vec![scan(b"abc")]);
    }

    #[test]
    fn reset_forgets_the_partial_frame() {
        let mut framer = Framer::new(framing(b"\r\n", 100));
        let mut out = Vec::new();
        framer.push(b"half a scan\r", &mut out);
        assert_eq!(framer.reset(), 12);
        framer.push(b"\nnext\r\n", &mut out);
        assert_eq!(out, vec![scan(b"\nnext")]);
    }

    /// A second framer, written the plain way (unbounded buffer, `ends_with`), to check the
    /// streaming one against. Over-long frames are judged when they end, or at the end of the
    /// stream for the one in progress.
    fn model(f: &Framing, stream: &[u8]) -> Vec<Frame> {
        let t = f.terminator.as_slice();
        let max = f.max_frame_bytes;
        let refused = |content: &[u8]| Frame::Refused {
            head: content[..content.len().min(HEAD_BYTES).min(max + 1)].to_vec(),
            reason: format!("the scan is longer than {max} bytes (max_frame_bytes)"),
        };
        let mut out = Vec::new();
        let mut cur: Vec<u8> = Vec::new();
        let mut skip_lf = false;
        for &b in stream {
            if std::mem::take(&mut skip_lf) && b == LF {
                continue;
            }
            cur.push(b);
            if cur.ends_with(t) {
                let mut content = cur[..cur.len() - t.len()].to_vec();
                if t[0] == LF && content.last() == Some(&CR) {
                    content.pop();
                }
                if content.len() > max {
                    out.push(refused(&content));
                } else {
                    let mut s = content.as_slice();
                    if let Some(p) = &f.strip_prefix {
                        s = s.strip_prefix(p.as_slice()).unwrap_or(s);
                    }
                    if let Some(p) = &f.strip_suffix {
                        s = s.strip_suffix(p.as_slice()).unwrap_or(s);
                    }
                    if !s.is_empty() {
                        out.push(Frame::Scan(s.to_vec()));
                    }
                }
                cur.clear();
                skip_lf = t[t.len() - 1] == CR;
            }
        }
        // The frame in progress is already refused if certainly too long.
        let matched = (1..t.len())
            .rev()
            .find(|&k| cur.ends_with(&t[..k]))
            .unwrap_or(0);
        let known = cur.len() - matched;
        let cr_may_go = known == max + 1 && t[0] == LF && cur[known - 1] == CR;
        if known > max && !cr_may_go {
            out.push(refused(&cur));
        }
        out
    }

    /// Bytes from a small alphabet, so that terminators, CR and LF are frequent.
    fn stream() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![
                Just(b'\r'),
                Just(b'\n'),
                Just(b'a'),
                Just(b'b'),
                Just(0x1d),
                any::<u8>()
            ],
            0..300,
        )
    }

    fn framing_strategy() -> impl Strategy<Value = Framing> {
        let small = prop::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a'), Just(b'b')],
            1..4,
        );
        (
            small.clone(),
            prop::option::of(small.clone()),
            prop::option::of(small),
            0usize..12,
        )
            .prop_map(|(terminator, strip_prefix, strip_suffix, max)| Framing {
                terminator,
                strip_prefix,
                strip_suffix,
                max_frame_bytes: max,
            })
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_model_s_frames(
            f in framing_strategy(),
            bytes in stream(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
        ) {
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut from = 0;
            for p in points {
                chunks.push(&bytes[from..p]);
                from = p;
            }
            chunks.push(&bytes[from..]);
            let expected = model(&f, &bytes);
            prop_assert_eq!(frames(f.clone(), &chunks), expected.clone());
            prop_assert_eq!(frames(f.clone(), &[&bytes]), expected.clone());
            let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
            prop_assert_eq!(frames(f, &one_by_one), expected);
        }

        #[test]
        fn memory_stays_within_max_frame_bytes(
            f in framing_strategy(),
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..30),
            crlf in prop::collection::vec(stream(), 0..5),
        ) {
            let bound = f.max_frame_bytes + f.terminator.len() + 1;
            let mut framer = Framer::new(f);
            let capacity = framer.buf.capacity();
            let mut out = Vec::new();
            for c in chunks.iter().chain(crlf.iter()) {
                framer.push(c, &mut out);
                prop_assert!(framer.pending() <= bound, "{} > {bound}", framer.pending());
                prop_assert_eq!(framer.buf.capacity(), capacity, "the buffer never grows");
                for frame in out.drain(..) {
                    let len = match frame {
                        Frame::Scan(s) => s.len(),
                        Frame::Refused { head, .. } => head.len(),
                    };
                    prop_assert!(len <= bound);
                }
            }
        }
    }
}

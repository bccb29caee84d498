//! The spool's bytes: keys, blocks of event records, counters, dead-letter and quarantine
//! entries. Pure: no sled, no I/O, never panics on any input.
//!
//! Everything lives in one sled tree, in keyspaces told apart by the first byte of the key, so
//! that a change touching several of them is one atomic `apply_batch`:
//!
//! | key | value |
//! |---|---|
//! | `m` `format` | the format version, u32 big-endian ([`FORMAT_VERSION`]) |
//! | `m` `keycheck` | the key check value: a sealed constant (present once a key was used) |
//! | `m` `counters` | [`Counters`] |
//! | `b` seq | a block: the records of consecutive events, the first with this seq |
//! | `c` sink | the sink's cursor: every event up to this seq is done for the sink (u64) |
//! | `d` len sink seq | a dead letter of `sink` ([`DeadRecord`], JSON) |
//! | `r` len sink seq | a dead letter handed back to `sink` for replay ([`DeadRecord`], JSON) |
//! | `q` seq tag | a quarantined record (tag 0) or damaged block tail (tag 1) ([`QuarantineRecord`]) |
//! | `i` id | the seq of a recent event stored with `append_once` (u64) |
//! | `o` seq | the id of that event (16 bytes): the recent-id index in seq order, for pruning |
//!
//! Seqs in keys are big-endian so that key order is seq order.
//!
//! A block is `BLOCK_V1` followed by records, each `seq u64 | id [16] | flags u8 | len u32 |
//! payload`, in ascending seq order. The payload is the postcard envelope of the event
//! (`tallyman_protocol::wire`), or, with [`FLAG_ENCRYPTED`], a 12-byte nonce followed by the
//! ChaCha20-Poly1305 ciphertext of the envelope. The id and [`FLAG_SCAN`] are kept in the clear
//! so that `get(id)`, garbage collection and dropping raw scans need no key and no decoding.

use serde::{Deserialize, Serialize};
use tallyman_protocol::event::{EventId, Kind, Timestamp};

/// The on-disk format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

pub const META_FORMAT: &[u8] = b"mformat";
pub const META_KEYCHECK: &[u8] = b"mkeycheck";
pub const META_COUNTERS: &[u8] = b"mcounters";

const BLOCK: u8 = b'b';
const CURSOR: u8 = b'c';
const DEAD: u8 = b'd';
const REPLAY: u8 = b'r';
const QUARANTINE: u8 = b'q';
const RECENT_ID: u8 = b'i';
const RECENT_ORDER: u8 = b'o';

/// The version byte in front of every block.
pub const BLOCK_V1: u8 = 1;
/// The payload is `nonce | ciphertext` rather than the plain envelope.
pub const FLAG_ENCRYPTED: u8 = 0x01;
/// The event is a raw `scan` (the kind the quota may drop).
pub const FLAG_SCAN: u8 = 0x02;
const KNOWN_FLAGS: u8 = FLAG_ENCRYPTED | FLAG_SCAN;
/// Bytes of a record in front of its payload.
pub const RECORD_HEADER: usize = 8 + 16 + 1 + 4;

/// The first key of the block keyspace, and the key of the block starting at `seq`.
pub fn block_key(seq: u64) -> [u8; 9] {
    let mut k = [BLOCK; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The seq of a block key, if `key` is one.
pub fn block_seq(key: &[u8]) -> Option<u64> {
    match key {
        [BLOCK, rest @ ..] => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

/// A key above every block key (the end of the block keyspace, exclusive).
pub const BLOCK_END: [u8; 9] = [BLOCK + 1, 0, 0, 0, 0, 0, 0, 0, 0];

pub fn cursor_key(sink: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + sink.len());
    k.push(CURSOR);
    k.extend_from_slice(sink.as_bytes());
    k
}

pub const CURSOR_PREFIX: [u8; 1] = [CURSOR];
pub const DEAD_PREFIX: [u8; 1] = [DEAD];
pub const REPLAY_PREFIX: [u8; 1] = [REPLAY];
pub const QUARANTINE_PREFIX: [u8; 1] = [QUARANTINE];

/// The sink a cursor key belongs to.
pub fn cursor_sink(key: &[u8]) -> Option<&str> {
    match key {
        [CURSOR, rest @ ..] => std::str::from_utf8(rest).ok(),
        _ => None,
    }
}

fn sink_seq_key(space: u8, sink: &str, seq: u64) -> Vec<u8> {
    let name = sink.as_bytes();
    let mut k = Vec::with_capacity(2 + name.len() + 8);
    k.push(space);
    // Sink names are at most 255 bytes (checked when the spool opens).
    k.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
    k.extend_from_slice(name);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn parse_sink_seq_key(space: u8, key: &[u8]) -> Option<(&str, u64)> {
    let (&first, rest) = key.split_first()?;
    if first != space {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    let len = usize::from(len);
    if rest.len() != len + 8 {
        return None;
    }
    let (name, seq) = rest.split_at(len);
    Some((
        std::str::from_utf8(name).ok()?,
        u64::from_be_bytes(seq.try_into().ok()?),
    ))
}

pub fn dead_key(sink: &str, seq: u64) -> Vec<u8> {
    sink_seq_key(DEAD, sink, seq)
}

pub fn parse_dead_key(key: &[u8]) -> Option<(&str, u64)> {
    parse_sink_seq_key(DEAD, key)
}

pub fn replay_key(sink: &str, seq: u64) -> Vec<u8> {
    sink_seq_key(REPLAY, sink, seq)
}

pub fn parse_replay_key(key: &[u8]) -> Option<(&str, u64)> {
    parse_sink_seq_key(REPLAY, key)
}

/// The recent-id index entry of event `id`.
pub fn recent_id_key(id: &[u8; 16]) -> [u8; 17] {
    let mut k = [RECENT_ID; 17];
    k[1..].copy_from_slice(id);
    k
}

/// The seq-ordered entry of the recent-id index for the event stored as `seq`.
pub fn recent_order_key(seq: u64) -> [u8; 9] {
    let mut k = [RECENT_ORDER; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The seq of a seq-ordered recent-id entry, if `key` is one.
pub fn recent_order_seq(key: &[u8]) -> Option<u64> {
    match key {
        [RECENT_ORDER, rest @ ..] => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

/// The key of a quarantined record (`tag` 0) or of a damaged block's unreadable tail (`tag`
/// 1, `seq` after the last readable record).
pub fn quarantine_key(seq: u64, tag: u8) -> [u8; 10] {
    let mut k = [QUARANTINE; 10];
    k[1..9].copy_from_slice(&seq.to_be_bytes());
    k[9] = tag;
    k
}

pub fn quarantine_seq(key: &[u8]) -> Option<u64> {
    match key {
        [QUARANTINE, rest @ .., _tag] => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

pub fn encode_u64(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

pub fn decode_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

/// The running totals, kept in `m counters` and changed by the committer only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// The seq the next accepted event gets (seqs start at 1).
    pub next_seq: u64,
    /// Events in blocks.
    pub events: u64,
    /// Bytes of the block values.
    pub block_bytes: u64,
    /// Entries in the quarantine keyspace, and their bytes.
    pub quarantined: u64,
    pub quarantine_bytes: u64,
    /// Raw scans dropped to make room (the `drop_oldest` policy), ever.
    pub dropped_scans: u64,
}

const COUNTERS_V1: u8 = 1;
const COUNTERS_LEN: usize = 1 + 6 * 8;

impl Counters {
    pub fn new() -> Counters {
        Counters {
            next_seq: 1,
            ..Counters::default()
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; COUNTERS_LEN];
        out[0] = COUNTERS_V1;
        let fields = [
            self.next_seq,
            self.events,
            self.block_bytes,
            self.quarantined,
            self.quarantine_bytes,
            self.dropped_scans,
        ];
        for (slot, v) in out[1..].chunks_exact_mut(8).zip(fields) {
            slot.copy_from_slice(&v.to_be_bytes());
        }
        out
    }

    pub fn decode(b: &[u8]) -> Option<Counters> {
        if b.len() != COUNTERS_LEN || b.first() != Some(&COUNTERS_V1) {
            return None;
        }
        let mut f = b.get(1..)?.chunks_exact(8).map(decode_u64);
        Some(Counters {
            next_seq: f.next()??,
            events: f.next()??,
            block_bytes: f.next()??,
            quarantined: f.next()??,
            quarantine_bytes: f.next()??,
            dropped_scans: f.next()??,
        })
    }

    /// Bytes of stored data the quota counts: blocks and quarantine.
    pub fn live_bytes(&self) -> u64 {
        self.block_bytes.saturating_add(self.quarantine_bytes)
    }
}

/// One record of a block, borrowed from the block's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    pub seq: u64,
    pub id: [u8; 16],
    pub flags: u8,
    pub payload: &'a [u8],
    /// The whole record (header and payload), to copy it into another block as it is.
    pub bytes: &'a [u8],
}

impl RawRecord<'_> {
    pub fn is_scan(&self) -> bool {
        self.flags & FLAG_SCAN != 0
    }

    pub fn is_encrypted(&self) -> bool {
        self.flags & FLAG_ENCRYPTED != 0
    }
}

/// Append one record to a block being built (`block` starts with [`BLOCK_V1`]).
#[cfg(test)]
pub fn push_record(block: &mut Vec<u8>, seq: u64, id: &[u8; 16], flags: u8, payload: &[u8]) {
    push_record_header(block, seq, id, flags, payload.len());
    block.extend_from_slice(payload);
}

/// Append a record header; the caller appends exactly `len` payload bytes after it.
pub fn push_record_header(block: &mut Vec<u8>, seq: u64, id: &[u8; 16], flags: u8, len: usize) {
    if block.is_empty() {
        block.push(BLOCK_V1);
    }
    block.extend_from_slice(&seq.to_be_bytes());
    block.extend_from_slice(id);
    block.push(flags);
    // Envelopes are at most 1 MiB (protocol::wire), so the length always fits.
    block.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
}

/// Where and why the structure of a block is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDamage {
    /// Byte offset of the first record that could not be read.
    pub offset: usize,
    pub reason: &'static str,
}

/// A parsed block: the records that could be read, and the damage that stopped the reading
/// (everything from `damage.offset` on is unreadable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block<'a> {
    pub records: Vec<RawRecord<'a>>,
    pub damage: Option<BlockDamage>,
}

/// Read a block stored under `key_seq`. Never fails: damage is reported with the records
/// before it.
pub fn parse_block(key_seq: u64, bytes: &[u8]) -> Block<'_> {
    let mut records = Vec::new();
    let damage = |offset, reason| Some(BlockDamage { offset, reason });
    let Some((&version, mut rest)) = bytes.split_first() else {
        return Block {
            records,
            damage: damage(0, "the block is empty"),
        };
    };
    if version != BLOCK_V1 {
        return Block {
            records,
            damage: damage(0, "unknown block version"),
        };
    }
    if rest.is_empty() {
        return Block {
            records,
            damage: damage(1, "the block holds no record"),
        };
    }
    let mut offset = 1usize;
    let mut min_seq = key_seq;
    while !rest.is_empty() {
        let Some((header, after)) = rest.split_at_checked(RECORD_HEADER) else {
            return Block {
                records,
                damage: damage(offset, "a record header is cut short"),
            };
        };
        let (seq, header) = header.split_at(8);
        let (id, header) = header.split_at(16);
        let (flags, len) = header.split_at(1);
        let seq = decode_u64(seq).unwrap_or(0);
        let flags = flags.first().copied().unwrap_or(0);
        let len = len
            .try_into()
            .map(u32::from_be_bytes)
            .map(|l| l as usize)
            .unwrap_or(usize::MAX);
        if seq < min_seq {
            return Block {
                records,
                damage: damage(offset, "record seqs are out of order"),
            };
        }
        if flags & !KNOWN_FLAGS != 0 {
            return Block {
                records,
                damage: damage(offset, "a record has unknown flags"),
            };
        }
        let Some((payload, next)) = after.split_at_checked(len) else {
            return Block {
                records,
                damage: damage(offset, "a record payload is cut short"),
            };
        };
        let total = RECORD_HEADER + len;
        let mut id_arr = [0u8; 16];
        id_arr.copy_from_slice(id);
        records.push(RawRecord {
            seq,
            id: id_arr,
            flags,
            payload,
            bytes: rest.get(..total).unwrap_or(rest),
        });
        min_seq = seq.saturating_add(1);
        offset += total;
        rest = next;
    }
    Block {
        records,
        damage: None,
    }
}

/// A dead letter as stored: what the sink said, and enough of the event to list it without
/// reading the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadRecord {
    pub event_id: EventId,
    pub kind: Kind,
    pub reason: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub first_attempt_at: Timestamp,
    pub last_attempt_at: Timestamp,
}

/// A quarantined record or block as stored: when, why, and the bytes as they were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineRecord {
    pub at_unix_millis: i64,
    pub reason: String,
    pub bytes: Vec<u8>,
}

impl QuarantineRecord {
    pub fn encode(&self) -> Vec<u8> {
        let reason = self.reason.as_bytes();
        let reason = reason
            .get(..reason.len().min(usize::from(u16::MAX)))
            .unwrap_or(reason);
        let mut out = Vec::with_capacity(8 + 2 + reason.len() + self.bytes.len());
        out.extend_from_slice(&self.at_unix_millis.to_be_bytes());
        out.extend_from_slice(
            &u16::try_from(reason.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        out.extend_from_slice(reason);
        out.extend_from_slice(&self.bytes);
        out
    }

    pub fn decode(b: &[u8]) -> Option<QuarantineRecord> {
        let (at, rest) = b.split_at_checked(8)?;
        let (len, rest) = rest.split_at_checked(2)?;
        let len = usize::from(u16::from_be_bytes(len.try_into().ok()?));
        let (reason, bytes) = rest.split_at_checked(len)?;
        Some(QuarantineRecord {
            at_unix_millis: i64::from_be_bytes(at.try_into().ok()?),
            reason: String::from_utf8_lossy(reason).into_owned(),
            bytes: bytes.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_seq() {
        assert_eq!(block_seq(&block_key(42)), Some(42));
        assert!(block_key(255) < block_key(256));
        assert!(block_key(u64::MAX).as_slice() < BLOCK_END.as_slice());
        assert_eq!(block_seq(b"b1"), None);
        assert_eq!(parse_dead_key(&dead_key("hub", 7)), Some(("hub", 7)));
        assert_eq!(parse_replay_key(&replay_key("odoo", 9)), Some(("odoo", 9)));
        assert_eq!(parse_dead_key(&replay_key("odoo", 9)), None);
        assert_eq!(parse_dead_key(b"d\x05hub"), None);
        assert_eq!(cursor_sink(&cursor_key("file")), Some("file"));
        assert_eq!(quarantine_seq(&quarantine_key(3, 1)), Some(3));
    }

    #[test]
    fn counters_round_trip() {
        let c = Counters {
            next_seq: 5,
            events: 4,
            block_bytes: 1000,
            quarantined: 1,
            quarantine_bytes: 20,
            dropped_scans: 2,
        };
        assert_eq!(Counters::decode(&c.encode()), Some(c));
        assert_eq!(Counters::decode(&c.encode()[..10]), None);
        assert_eq!(c.live_bytes(), 1020);
    }

    #[test]
    fn blocks_round_trip() {
        let mut b = Vec::new();
        push_record(&mut b, 10, &[1; 16], 0, b"abc");
        push_record(&mut b, 12, &[2; 16], FLAG_SCAN | FLAG_ENCRYPTED, b"");
        let parsed = parse_block(10, &b);
        assert_eq!(parsed.damage, None);
        assert_eq!(parsed.records.len(), 2);
        assert_eq!(parsed.records[0].seq, 10);
        assert_eq!(parsed.records[0].payload, b"abc");
        assert_eq!(parsed.records[1].seq, 12);
        assert!(parsed.records[1].is_scan() && parsed.records[1].is_encrypted());
        // Copying records as they are rebuilds the same block.
        let mut copy = vec![BLOCK_V1];
        for r in &parsed.records {
            copy.extend_from_slice(r.bytes);
        }
        assert_eq!(copy, b);
    }

    #[test]
    fn damaged_blocks_keep_what_can_be_read() {
        let mut b = Vec::new();
        push_record(&mut b, 10, &[1; 16], 0, b"abc");
        let first_len = b.len();
        push_record(&mut b, 11, &[2; 16], 0, b"defg");
        // Cut the second record's payload.
        let cut = &b[..b.len() - 1];
        let parsed = parse_block(10, cut);
        assert_eq!(parsed.records.len(), 1);
        assert_eq!(
            parsed.damage,
            Some(BlockDamage {
                offset: first_len,
                reason: "a record payload is cut short"
            })
        );
        // A seq below the block key.
        assert!(parse_block(11, &b).damage.is_some());
        assert!(parse_block(0, &[]).damage.is_some());
        assert!(parse_block(0, &[9, 9]).damage.is_some());
        assert!(parse_block(0, &[BLOCK_V1]).damage.is_some());
    }

    #[test]
    fn quarantine_records_round_trip() {
        let q = QuarantineRecord {
            at_unix_millis: 1_700_000_000_000,
            reason: "the envelope is malformed".into(),
            bytes: vec![1, 2, 3],
        };
        assert_eq!(QuarantineRecord::decode(&q.encode()), Some(q));
        assert_eq!(QuarantineRecord::decode(&[0; 9]), None);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parsing_never_panics(seq in any::<u64>(), b in proptest::collection::vec(any::<u8>(), 0..300)) {
                let parsed = parse_block(seq, &b);
                let mut at = 1usize;
                for r in &parsed.records {
                    prop_assert!(r.seq >= seq);
                    at += r.bytes.len();
                }
                if let Some(d) = parsed.damage {
                    prop_assert!(d.offset <= b.len());
                } else {
                    prop_assert_eq!(at, b.len());
                }
                let _ = Counters::decode(&b);
                let _ = QuarantineRecord::decode(&b);
                let _ = parse_dead_key(&b);
            }
        }
    }
}

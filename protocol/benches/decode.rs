//! Decoding speed: ns per decode of the three scans a gateway sees most — a GS1 DataMatrix UDI
//! (GTIN, expiry, lot, serial), an HIBC concatenated symbol and an SGTIN-96 from an RFID reader.
//!
//! `cargo bench -p tallyman-protocol --bench decode`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tallyman_protocol::barcode::{self, DecodeOptions};
use tallyman_protocol::{Date, rfid};

const GS1_UDI: &[u8] = b"]d201095011010209171727123110LOT123\x1d21SER0001";
const HIBC: &[u8] = b"+A99912345/$$52001510X33";
const SGTIN_96: &[u8] = b"3074257BF7194E4000001A85";

fn decode(c: &mut Criterion) {
    let opts = DecodeOptions {
        gs_aliases: Vec::new(),
        today: Date::new(2026, 11, 24).unwrap_or(Date::UNIX_EPOCH),
    };
    // Fail loudly if a benchmark input stops decoding: timing an error path would mislead.
    assert!(
        barcode::decode(GS1_UDI, &opts).is_ok(),
        "GS1 input must decode"
    );
    assert!(
        barcode::decode(HIBC, &opts).is_ok(),
        "HIBC input must decode"
    );
    assert!(
        rfid::decode_line(SGTIN_96).is_ok(),
        "SGTIN-96 input must decode"
    );

    let mut g = c.benchmark_group("decode");
    g.bench_function("gs1_datamatrix_udi", |b| {
        b.iter(|| barcode::decode(black_box(GS1_UDI), &opts))
    });
    g.bench_function("hibc_concatenated", |b| {
        b.iter(|| barcode::decode(black_box(HIBC), &opts))
    });
    g.bench_function("sgtin_96", |b| {
        b.iter(|| rfid::decode_line(black_box(SGTIN_96)))
    });
    g.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);

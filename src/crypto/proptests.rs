//! Property tests of the STREAM engine: random sizes, segment sizes and ranges.

use std::io::Cursor;

use proptest::prelude::*;
use proptest::sample::Index;

use super::{DEFAULT_SEGMENT_SIZE, DataKey, Engine, Error, MIN_SEGMENT_SIZE};

fn engine(segment_size: u32) -> Engine {
    Engine::new(&DataKey::generate().unwrap())
        .with_segment_size(segment_size)
        .unwrap()
}

fn plaintext(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A range within `0..=len` from two random indices, so that ranges across segment
/// borders, empty ranges and whole-object ranges all come up.
fn range(len: usize, a: Index, b: Index) -> std::ops::Range<usize> {
    let x = a.index(len + 1);
    let y = b.index(len + 1);
    x.min(y)..x.max(y)
}

fn segment_sizes() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(MIN_SEGMENT_SIZE),
        Just(MIN_SEGMENT_SIZE + 16),
        Just(3000u32),
        Just(4096u32)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Small segments: many segment borders per object at little cost.
    #[test]
    fn open_range_equals_the_slice(
        segment_size in segment_sizes(),
        len in 0usize..40_000,
        seed in any::<u8>(),
        ranges in proptest::collection::vec((any::<Index>(), any::<Index>()), 1..6),
    ) {
        let e = engine(segment_size);
        let pt = plaintext(len, seed);
        let sealed = e.seal(&pt, b"aad").unwrap();
        for (a, b) in ranges {
            let r = range(len, a, b);
            let got = e.open_range(Cursor::new(&sealed), b"aad", r.start as u64..r.end as u64).unwrap();
            prop_assert_eq!(&got[..], &pt[r]);
        }
    }

    #[test]
    fn streaming_and_in_memory_agree(
        segment_size in segment_sizes(),
        len in 0usize..80_000,
        seed in any::<u8>(),
    ) {
        let e = engine(segment_size);
        let pt = plaintext(len, seed);
        let mut streamed = Vec::new();
        e.seal_stream(&pt[..], &mut streamed, b"").unwrap();
        prop_assert_eq!(streamed.len() as u64, e.layout().sealed_len(len as u64).unwrap());
        prop_assert_eq!(e.open(&streamed, b"").unwrap(), pt.clone());
        let mem = e.seal(&pt, b"").unwrap();
        let mut out = Vec::new();
        e.open_stream(&mem[..], &mut out, b"").unwrap();
        prop_assert_eq!(out, pt);
    }

    /// Any single-bit flip anywhere in the sealed bytes is refused.
    #[test]
    fn any_flipped_bit_is_refused(len in 0usize..10_000, at in any::<Index>(), bit in 0u8..8) {
        let e = engine(MIN_SEGMENT_SIZE);
        let mut sealed = e.seal(&plaintext(len, 1), b"").unwrap();
        let i = at.index(sealed.len());
        sealed[i] ^= 1 << bit;
        prop_assert!(e.open(&sealed, b"").is_err());
        prop_assert!(e.open_stream(&sealed[..], std::io::sink(), b"").is_err());
    }

    /// Any truncation is refused, by both whole-object APIs.
    #[test]
    fn any_truncation_is_refused(len in 0usize..10_000, at in any::<Index>()) {
        let e = engine(MIN_SEGMENT_SIZE);
        let sealed = e.seal(&plaintext(len, 2), b"").unwrap();
        let cut = at.index(sealed.len());
        prop_assert!(e.open(&sealed[..cut], b"").is_err());
        prop_assert!(e.open_stream(&sealed[..cut], std::io::sink(), b"").is_err());
    }

    #[test]
    fn lengths_invert(plain_len in 0u64..(1u64 << 42), segment_size in segment_sizes()) {
        let layout = engine(segment_size).layout();
        let sealed = layout.sealed_len(plain_len).unwrap();
        prop_assert_eq!(layout.plaintext_len(sealed).unwrap(), plain_len);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// The default segment size, over objects of up to four segments.
    #[test]
    fn open_range_at_default_segment_size(
        len in 0usize..(4 * DEFAULT_SEGMENT_SIZE as usize),
        a in any::<Index>(),
        b in any::<Index>(),
    ) {
        let e = engine(DEFAULT_SEGMENT_SIZE);
        let pt = plaintext(len, 3);
        let sealed = e.seal(&pt, b"k").unwrap();
        let r = range(len, a, b);
        let got = e.open_range(Cursor::new(&sealed), b"k", r.start as u64..r.end as u64).unwrap();
        prop_assert_eq!(&got[..], &pt[r]);
        let past = e.open_range(Cursor::new(&sealed), b"k", 0..len as u64 + 1);
        let out_of_bounds = matches!(past, Err(Error::RangeOutOfBounds { .. }));
        prop_assert!(out_of_bounds);
    }
}

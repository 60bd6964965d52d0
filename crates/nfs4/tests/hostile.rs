//! Hostile replies: truncated, with oversized lengths, results out of order, more results
//! than operations, unknown operation numbers, random bytes. Each is refused with an error
//! (never a panic), and no allocation made while decoding one is larger than the limits
//! allow: a counting allocator watches every allocation of this test binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use openvaai_nfs4::compound::decode_reply;
use openvaai_nfs4::ops::opcode;
use proptest::prelude::*;

/// Records the largest allocation made on this thread while `WATCH` is set.
struct Counting;

thread_local! {
    static WATCH: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the bookkeeping allocates nothing.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size());
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `alloc` above, i.e. from `System`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        note(new);
        // SAFETY: as for `dealloc`.
        unsafe { System.realloc(p, l, new) }
    }
}

fn note(size: usize) {
    let _ = WATCH.try_with(|w| {
        if w.get() {
            let _ = LARGEST.try_with(|m| m.set(m.get().max(size)));
        }
    });
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The largest single allocation a decode may make: a copy of the input (an unknown last
/// result's body) or one bounded item (an attribute list, a vector of results), whichever
/// is larger, with room for allocator rounding.
const ALLOWED: usize = 16 * 1024;

/// Decodes `b` as the results of `sent` with the allocator watched; returns the outcome and
/// the largest allocation.
fn decode_watched(b: &[u8], sent: &[u32]) -> (bool, usize) {
    LARGEST.with(|m| m.set(0));
    WATCH.with(|w| w.set(true));
    let ok = decode_reply(b, sent).is_ok();
    WATCH.with(|w| w.set(false));
    (ok, LARGEST.with(|m| m.get()))
}

fn words(w: &[u32]) -> Vec<u8> {
    w.iter().flat_map(|v| v.to_be_bytes()).collect()
}

const SENT: [u32; 5] = [
    opcode::SEQUENCE,
    opcode::PUTROOTFH,
    opcode::LOOKUP,
    opcode::GETFH,
    opcode::GETATTR,
];

/// A good reply to SENT (the one of `wire.rs`).
fn good() -> Vec<u32> {
    let mut w = vec![0, 0, 5, 53, 0];
    w.extend_from_slice(&[0x1111_1111; 4]);
    w.extend_from_slice(&[1, 0, 0, 0, 0]);
    w.extend_from_slice(&[24, 0, 15, 0, 10, 0, 8, 0xdead_beef, 1]);
    w.extend_from_slice(&[9, 0, 2, 0x12, 0x2000, 20, 1, 0, 0x10_0000, 0, 0x8000]);
    w
}

#[test]
fn the_good_reply_decodes() {
    assert!(decode_watched(&words(&good()), &SENT).0);
}

#[test]
fn every_truncation_of_a_good_reply_is_refused() {
    let b = words(&good());
    for len in 0..b.len() {
        let (ok, largest) = decode_watched(&b[..len], &SENT);
        assert!(!ok, "a reply cut at {len} of {} bytes decoded", b.len());
        assert!(largest <= ALLOWED, "cut at {len}: allocated {largest}");
    }
}

#[test]
fn a_huge_result_count_is_refused_before_allocating() {
    let mut w = good();
    w[2] = 0x7fff_ffff;
    let (ok, largest) = decode_watched(&words(&w), &SENT);
    assert!(!ok);
    assert!(largest <= ALLOWED, "allocated {largest}");
}

/// A READDIR reply of `n` entries with one-byte names, then the end of the list.
fn readdir_reply(n: usize) -> Vec<u32> {
    let mut w = vec![0, 0, 3, 53, 0];
    w.extend_from_slice(&[0x1111_1111; 4]);
    w.extend_from_slice(&[1, 0, 0, 0, 0]);
    w.extend_from_slice(&[22, 0, 26, 0, 7, 7]); // PUTFH ok, READDIR ok, cookieverf
    for i in 0..n as u32 {
        w.extend_from_slice(&[1, 0, i + 3, 1, 0x6100_0000, 0, 0]);
    }
    w.extend_from_slice(&[0, 1]);
    w
}

const READDIR_SENT: [u32; 3] = [opcode::SEQUENCE, opcode::PUTFH, opcode::READDIR];

#[test]
fn a_readdir_reply_with_too_many_entries_is_refused_and_its_cuts_too() {
    let b = words(&readdir_reply(3));
    assert!(decode_watched(&b, &READDIR_SENT).0);
    for len in 0..b.len() {
        assert!(!decode_watched(&b[..len], &READDIR_SENT).0, "cut at {len}");
    }
    let (ok, largest) = decode_watched(&words(&readdir_reply(512)), &READDIR_SENT);
    assert!(
        ok && largest <= ALLOWED,
        "512 entries: {ok}, allocated {largest}"
    );
    let (ok, largest) = decode_watched(&words(&readdir_reply(2000)), &READDIR_SENT);
    assert!(!ok, "2000 entries in one reply decoded");
    assert!(largest <= ALLOWED, "allocated {largest}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Any word of a good reply replaced by a large value (a length, a count, an opcode,
    /// a status, a discriminant): refused or decoded, never a panic or a large allocation.
    #[test]
    fn any_word_replaced_by_a_large_value(
        at in 0usize..34,
        v in prop_oneof![
            Just(u32::MAX), Just(0x8000_0000u32), Just(0x7fff_ffffu32),
            Just(65_536u32), Just(4097u32), Just(10044u32), Just(2u32), any::<u32>()
        ],
    ) {
        let mut w = good();
        let at = at % w.len();
        w[at] = v;
        let (_, largest) = decode_watched(&words(&w), &SENT);
        prop_assert!(largest <= ALLOWED, "word {} = {:#x}: allocated {}", at, v, largest);
    }

    /// Random bytes after a plausible start: never a panic, never a large allocation.
    #[test]
    fn random_replies(tail in proptest::collection::vec(any::<u8>(), 0..2048), n in 0u32..40) {
        let mut b = words(&[0, 0, n]);
        b.extend_from_slice(&tail);
        let (_, largest) = decode_watched(&b, &SENT);
        prop_assert!(largest <= ALLOWED, "allocated {}", largest);
    }

    /// The good reply's results in any other order, or with results added or left out in
    /// the middle: refused.
    #[test]
    fn results_out_of_order_or_extra_are_refused(swap in 1usize..5, extra in 0usize..3) {
        // The results of `good()`, split at their boundaries.
        let g = good();
        let parts: Vec<Vec<u32>> = vec![
            g[3..14].to_vec(), g[14..16].to_vec(), g[16..18].to_vec(),
            g[18..23].to_vec(), g[23..].to_vec(),
        ];
        let mut order: Vec<usize> = (0..5).collect();
        order.swap(0, swap);
        order.extend(std::iter::repeat_n(1, extra));
        let mut w = vec![0, 0, order.len() as u32];
        for i in &order {
            w.extend_from_slice(&parts[*i]);
        }
        let (ok, _) = decode_watched(&words(&w), &SENT);
        prop_assert!(!ok, "order {:?} decoded", order);
    }

    /// A result whose operation number this crate does not know, anywhere but last: refused.
    #[test]
    fn unknown_operation_numbers_are_refused(op in 72u32..10_044, at in 0usize..4) {
        let g = good();
        let starts = [3usize, 14, 16, 18];
        let mut w = g.clone();
        w[starts[at]] = op;
        let (ok, _) = decode_watched(&words(&w), &SENT);
        prop_assert!(!ok);
    }
}

//! `memcmp` and `bcmp` that compare eight bytes at a time, for the two C libraries
//! chatgate links whose own compare one byte at a time: musl's (the static host) and
//! wasi-libc's (the components). Checked on the `libc.a` each Rust target links
//! (`lib/rustlib/{x86_64-unknown-linux-musl,wasm32-wasip2}/lib/self-contained/` of the
//! toolchain, `memcmp.lo` and `memcmp.c.obj` disassembled): one byte per turn of a loop.
//!
//! Why it matters: wasmtime compares the case names of a variant type, byte by byte
//! through `memcmp`, each time the host hands a future or a stream to a guest
//! (`typecheck_lowered_transmit`; `wasi:http`'s `error-code` has 39 cases), and Rust's
//! `==` on strings and slices is a `memcmp` or `bcmp` call. Callgrind counted musl's
//! `memcmp` at 29 k of the 510 k instructions of `hello` behind `telemetry`, 51 k of the
//! 1,231 k of `GET /v1/models` through the shipped chain and 83 k of a RAG answer's
//! 4,254 k; with this crate, 7 k, 12 k and 18 k (`docs/measurements/benchmarks.md`,
//! "musl's and wasi-libc's `memcmp`").
//!
//! A crate links these by naming this one (`use chatgate_memcmp as _;`), and the linker
//! then takes them rather than the C library's: `nm` on the static host shows `memcmp` and
//! `bcmp` at one address (this crate's two functions, folded; musl's `bcmp` is a function
//! of its own that calls `memcmp`), and the guests' counts fell with the host's. Elsewhere
//! (glibc, whose `memcmp` is vectorised) the crate only has [`compare`].
#![cfg_attr(not(test), no_std)]

use core::cmp::Ordering;

const WORD: usize = core::mem::size_of::<u64>();
const HALF: usize = core::mem::size_of::<u32>();

/// `left` against `right` in lexicographic byte order, over the first
/// `min(left.len(), right.len())` bytes (the C functions pass slices of one length).
///
/// Whole words from the start, then one last word that may overlap the one before: its
/// bytes already compared are equal, so its first difference is the slices' first. Below
/// eight bytes, the first and last four (which may overlap) in one word likewise. Where
/// two words differ, the lowest set bit of their difference finds the first byte that
/// does: no byte swap, which WebAssembly has no instruction for. Written without slice
/// comparison, which would itself call `memcmp`.
#[inline]
pub fn compare(left: &[u8], right: &[u8]) -> Ordering {
    let len = left.len().min(right.len());
    let (left, right) = (&left[..len], &right[..len]);
    if len >= WORD {
        let mut start = 0;
        while start + WORD < len {
            let (l, r) = (word(&left[start..]), word(&right[start..]));
            if l != r {
                return first_difference(l, r);
            }
            start += WORD;
        }
        return first_difference(word(&left[len - WORD..]), word(&right[len - WORD..]));
    }
    if len >= HALF {
        let ends = |bytes: &[u8]| half(bytes) | half(&bytes[len - HALF..]) << 32;
        return first_difference(ends(left), ends(right));
    }
    for (l, r) in left.iter().zip(right) {
        if l != r {
            return l.cmp(r);
        }
    }
    Ordering::Equal
}

/// The order of the first differing byte of two words read by [`word`] (byte `i` in bits
/// `8 * i` up), or `Equal`.
#[inline]
fn first_difference(left: u64, right: u64) -> Ordering {
    let shift = (left ^ right).trailing_zeros() & !7;
    if shift >= u64::BITS {
        return Ordering::Equal;
    }
    ((left >> shift) as u8).cmp(&((right >> shift) as u8))
}

/// The first eight bytes, the first in the lowest bits.
#[inline]
fn word(bytes: &[u8]) -> u64 {
    let mut array = [0u8; WORD];
    array.copy_from_slice(&bytes[..WORD]);
    u64::from_le_bytes(array)
}

/// The first four bytes, the first in the lowest bits.
#[inline]
fn half(bytes: &[u8]) -> u64 {
    let mut array = [0u8; HALF];
    array.copy_from_slice(&bytes[..HALF]);
    u64::from(u32::from_le_bytes(array))
}

/// The C symbols, where the C library's own compare one byte at a time.
#[cfg(any(target_env = "musl", target_os = "wasi"))]
#[allow(unsafe_code)]
mod c_symbols {
    use core::ffi::c_int;

    /// C's `memcmp`: the sign of the first differing byte of `left` and `right`.
    ///
    /// # Safety
    /// C's contract: both point to `len` readable bytes (any pointer when `len` is 0).
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcmp(left: *const u8, right: *const u8, len: usize) -> c_int {
        if len == 0 {
            return 0;
        }
        // SAFETY: the caller's contract above; `len` is not 0, so neither pointer is null.
        let (left, right) = unsafe {
            (
                core::slice::from_raw_parts(left, len),
                core::slice::from_raw_parts(right, len),
            )
        };
        super::compare(left, right) as c_int
    }

    /// C's `bcmp`: zero when the `len` bytes are equal, not zero otherwise.
    ///
    /// # Safety
    /// As [`memcmp`].
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn bcmp(left: *const u8, right: *const u8, len: usize) -> c_int {
        // SAFETY: the same contract, passed on.
        unsafe { memcmp(left, right, len) }
    }
}

#[cfg(test)]
mod tests {
    use super::compare;
    use core::cmp::Ordering;

    /// The order the standard library gives, computed one byte at a time (slice `cmp`
    /// would call the `memcmp` under test where this crate replaces it).
    fn bytewise(left: &[u8], right: &[u8]) -> Ordering {
        for (l, r) in left.iter().zip(right) {
            if l != r {
                return l.cmp(r);
            }
        }
        Ordering::Equal
    }

    #[test]
    fn equal_bytes_compare_equal_at_every_length() {
        let bytes: Vec<u8> = (0..=255).collect();
        for len in 0..bytes.len() {
            assert_eq!(compare(&bytes[..len], &bytes[..len]), Ordering::Equal);
        }
    }

    #[test]
    fn the_first_differing_byte_decides_wherever_it_is() {
        for len in 1..40 {
            for at in 0..len {
                let left: Vec<u8> = (0..len as u8).collect();
                let mut right = left.clone();
                // A later byte pulling the other way must not change the answer.
                right[at] = left[at].wrapping_add(1);
                if at + 1 < len {
                    right[len - 1] = 0;
                }
                assert_eq!(compare(&left, &right), Ordering::Less, "len {len} at {at}");
                assert_eq!(
                    compare(&right, &left),
                    Ordering::Greater,
                    "len {len} at {at}"
                );
            }
        }
    }

    #[test]
    fn bytes_compare_unsigned() {
        assert_eq!(compare(&[0x80; 9], &[0x7f; 9]), Ordering::Greater);
        assert_eq!(compare(&[0xff], &[0x00]), Ordering::Greater);
    }

    #[test]
    fn only_the_common_length_is_compared() {
        assert_eq!(compare(b"abcdefghij", b"abcdefghijkl"), Ordering::Equal);
    }

    #[cfg(not(target_family = "wasm"))]
    mod properties {
        use super::{bytewise, compare};
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn agrees_with_a_bytewise_compare(
                left in proptest::collection::vec(any::<u8>(), 0..80),
                right in proptest::collection::vec(any::<u8>(), 0..80),
            ) {
                prop_assert_eq!(compare(&left, &right), bytewise(&left, &right));
            }

            #[test]
            fn agrees_on_slices_that_share_a_prefix(
                prefix in proptest::collection::vec(any::<u8>(), 0..40),
                left_tail in proptest::collection::vec(any::<u8>(), 0..12),
                right_tail in proptest::collection::vec(any::<u8>(), 0..12),
            ) {
                let left = [prefix.as_slice(), &left_tail].concat();
                let right = [prefix.as_slice(), &right_tail].concat();
                prop_assert_eq!(compare(&left, &right), bytewise(&left, &right));
            }
        }
    }

    /// The C functions' contract: the sign of the first difference, zero for equal bytes,
    /// and no read at all for a length of zero.
    #[cfg(any(target_env = "musl", target_os = "wasi"))]
    #[test]
    #[allow(unsafe_code)]
    fn the_c_symbols_keep_c_s_contract() {
        use super::c_symbols::{bcmp, memcmp};
        let (left, right) = (b"the same prefix, then a", b"the same prefix, then b");
        let null = core::ptr::null();
        // SAFETY: both point to 23 readable bytes; a length of 0 reads nothing.
        let (order, reverse, same, differ, empty) = unsafe {
            (
                memcmp(left.as_ptr(), right.as_ptr(), 23),
                memcmp(right.as_ptr(), left.as_ptr(), 23),
                bcmp(left.as_ptr(), left.as_ptr(), 23),
                bcmp(left.as_ptr(), right.as_ptr(), 23),
                memcmp(null, null, 0),
            )
        };
        assert!(order < 0 && reverse > 0);
        assert_eq!((same, empty), (0, 0));
        assert_ne!(differ, 0);
    }
}

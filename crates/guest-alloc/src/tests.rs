//! The allocator as a specification: what it hands out, reuses and gives back, checked
//! against a counting allocator behind it (natively; the lists do not depend on Wasm).

use super::*;
use proptest::prelude::*;
use std::alloc::System;
use std::cell::Cell;

/// `System`, counting the calls that reach it.
#[derive(Default)]
struct Behind {
    allocs: Cell<usize>,
    deallocs: Cell<usize>,
}

unsafe impl GlobalAlloc for Behind {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.allocs.set(self.allocs.get() + 1);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        self.deallocs.set(self.deallocs.get() + 1);
        unsafe { System.dealloc(block, layout) }
    }
}

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

fn allocator() -> SizeClasses<Behind> {
    SizeClasses::new(Behind::default())
}

#[test]
fn a_freed_small_block_is_handed_out_again_for_its_size_class() {
    let a = allocator();
    unsafe {
        let first = a.alloc(layout(20, 8));
        a.dealloc(first, layout(20, 8));
        // 20 and 24 bytes are one class (17..=24).
        let again = a.alloc(layout(24, 1));
        assert_eq!(again, first);
        assert_eq!(a.behind.allocs.get(), 1);
        assert_eq!(a.behind.deallocs.get(), 0);
        a.dealloc(again, layout(24, 1));
    }
}

#[test]
fn another_size_class_does_not_get_the_block() {
    let a = allocator();
    unsafe {
        let small = a.alloc(layout(GRANULE, 8));
        a.dealloc(small, layout(GRANULE, 8));
        let larger = a.alloc(layout(GRANULE + 1, 8));
        assert_ne!(larger, small);
        assert_eq!(a.behind.allocs.get(), 2);
        a.dealloc(larger, layout(GRANULE + 1, 8));
    }
}

#[test]
fn freed_blocks_come_back_last_freed_first() {
    let a = allocator();
    unsafe {
        let blocks: Vec<_> = (0..4).map(|_| a.alloc(layout(48, 8))).collect();
        for &block in &blocks {
            a.dealloc(block, layout(48, 8));
        }
        for &block in blocks.iter().rev() {
            assert_eq!(a.alloc(layout(48, 8)), block);
        }
        assert_eq!(a.behind.allocs.get(), 4);
        for &block in &blocks {
            a.dealloc(block, layout(48, 8));
        }
    }
}

#[test]
fn large_or_overaligned_blocks_go_to_the_allocator_behind() {
    let a = allocator();
    unsafe {
        for l in [layout(MAX_CACHED_SIZE + 1, 8), layout(64, 2 * ALIGN)] {
            let block = a.alloc(l);
            assert_eq!(block as usize % l.align(), 0);
            a.dealloc(block, l);
        }
        assert_eq!(a.behind.allocs.get(), 2);
        assert_eq!(a.behind.deallocs.get(), 2);
    }
}

#[test]
fn every_cached_block_is_aligned_as_malloc_promises() {
    let a = allocator();
    unsafe {
        for size in 1..=MAX_CACHED_SIZE {
            let block = a.alloc(layout(size, 1));
            assert_eq!(block as usize % ALIGN, 0, "size {size}");
            a.dealloc(block, layout(size, 1));
        }
    }
}

#[test]
fn a_class_keeps_at_most_its_share_of_free_bytes_and_gives_back_the_rest() {
    let a = allocator();
    let l = layout(MAX_CACHED_SIZE, 8);
    let kept = MAX_CACHED_BYTES / MAX_CACHED_SIZE;
    unsafe {
        let blocks: Vec<_> = (0..kept + 3).map(|_| a.alloc(l)).collect();
        for &block in &blocks {
            a.dealloc(block, l);
        }
        assert_eq!(a.behind.deallocs.get(), 3);
        // The ones kept are handed out again without the allocator behind.
        let again: Vec<_> = (0..kept).map(|_| a.alloc(l)).collect();
        assert_eq!(a.behind.allocs.get(), kept + 3);
        for block in again {
            a.dealloc(block, l);
        }
    }
}

#[test]
fn a_reused_block_asked_for_zeroed_is_zeroed() {
    let a = allocator();
    unsafe {
        let block = a.alloc(layout(64, 8));
        block.write_bytes(0xAB, 64);
        a.dealloc(block, layout(64, 8));
        let zeroed = a.alloc_zeroed(layout(60, 4));
        assert_eq!(zeroed, block);
        assert!(
            std::slice::from_raw_parts(zeroed, 60)
                .iter()
                .all(|&b| b == 0)
        );
        a.dealloc(zeroed, layout(60, 4));
    }
}

#[test]
fn growing_within_a_class_keeps_the_block_and_across_classes_keeps_the_bytes() {
    let a = allocator();
    unsafe {
        let block = a.alloc(layout(10, 1));
        block.copy_from_nonoverlapping(b"0123456789".as_ptr(), 10);
        let same = a.realloc(block, layout(10, 1), 16);
        assert_eq!(same, block);
        let moved = a.realloc(same, layout(16, 1), 700);
        assert_eq!(std::slice::from_raw_parts(moved, 10), b"0123456789");
        let back = a.realloc(moved, layout(700, 1), 5);
        assert_eq!(std::slice::from_raw_parts(back, 5), b"01234");
        a.dealloc(back, layout(5, 1));
    }
}

#[test]
fn giving_back_empties_every_list_into_the_allocator_behind() {
    let a = allocator();
    unsafe {
        let blocks: Vec<_> = [8, 8, 100, 500]
            .iter()
            .map(|&n| (a.alloc(layout(n, 8)), n))
            .collect();
        for &(block, n) in &blocks {
            a.dealloc(block, layout(n, 8));
        }
        assert_eq!(a.behind.deallocs.get(), 0);
        a.give_back();
        assert_eq!(a.behind.deallocs.get(), 4);
        // Nothing is left to hand out: the next block is carved anew.
        let block = a.alloc(layout(8, 8));
        assert_eq!(a.behind.allocs.get(), 5);
        a.dealloc(block, layout(8, 8));
    }
}

#[test]
fn paused_it_keeps_nothing_freed_and_resumed_it_keeps_again() {
    let a = allocator();
    unsafe {
        let kept = a.alloc(layout(40, 8));
        a.dealloc(kept, layout(40, 8));
        a.pause();
        assert_eq!(a.behind.deallocs.get(), 1, "what it held, given back");
        let block = a.alloc(layout(40, 8));
        a.dealloc(block, layout(40, 8));
        assert_eq!(a.behind.deallocs.get(), 2, "freed while paused, given back");
        a.resume();
        let block = a.alloc(layout(40, 8));
        a.dealloc(block, layout(40, 8));
        assert_eq!(a.alloc(layout(40, 8)), block, "kept again");
        assert_eq!(a.behind.deallocs.get(), 2);
        a.dealloc(block, layout(40, 8));
    }
}

#[derive(Debug, Clone)]
enum Op {
    Alloc {
        size: usize,
        align_log2: u32,
        zeroed: bool,
    },
    Realloc {
        index: usize,
        size: usize,
    },
    Free {
        index: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let size = prop_oneof![1usize..=64, 1usize..=MAX_CACHED_SIZE + 64, 1usize..=4096];
    prop_oneof![
        (size.clone(), 0u32..=5, any::<bool>()).prop_map(|(size, align_log2, zeroed)| Op::Alloc {
            size,
            align_log2,
            zeroed
        }),
        (any::<usize>(), size).prop_map(|(index, size)| Op::Realloc { index, size }),
        any::<usize>().prop_map(|index| Op::Free { index }),
    ]
}

proptest! {
    /// Any sequence of allocations, reallocations and frees: live blocks never overlap
    /// (each keeps the byte it was filled with), are aligned as asked, and keep their
    /// bytes across a reallocation.
    #[test]
    fn live_blocks_never_overlap_and_keep_their_bytes(ops in proptest::collection::vec(op(), 1..300)) {
        let a = allocator();
        // (block, layout, fill byte)
        let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
        let mut next_fill = 1u8;
        let holds = |block: *mut u8, size: usize, fill: u8| unsafe {
            std::slice::from_raw_parts(block, size).iter().all(|&b| b == fill)
        };
        for op in ops {
            match op {
                Op::Alloc { size, align_log2, zeroed } => {
                    let l = layout(size, 1 << align_log2);
                    let block = unsafe { if zeroed { a.alloc_zeroed(l) } else { a.alloc(l) } };
                    prop_assert!(!block.is_null());
                    prop_assert_eq!(block as usize % l.align(), 0);
                    if zeroed {
                        prop_assert!(holds(block, size, 0));
                    }
                    unsafe { block.write_bytes(next_fill, size) };
                    live.push((block, l, next_fill));
                    next_fill = next_fill.wrapping_add(1).max(1);
                }
                Op::Realloc { index, size } if !live.is_empty() => {
                    let at = index % live.len();
                    let (block, l, fill) = live[at];
                    let moved = unsafe { a.realloc(block, l, size) };
                    prop_assert!(!moved.is_null());
                    prop_assert!(holds(moved, l.size().min(size), fill));
                    unsafe { moved.write_bytes(fill, size) };
                    live[at] = (moved, layout(size, l.align()), fill);
                }
                Op::Free { index } if !live.is_empty() => {
                    let (block, l, fill) = live.swap_remove(index % live.len());
                    prop_assert!(holds(block, l.size(), fill));
                    unsafe { a.dealloc(block, l) };
                }
                _ => {}
            }
            for &(block, l, fill) in &live {
                prop_assert!(holds(block, l.size(), fill));
            }
        }
        for (block, l, _) in live {
            unsafe { a.dealloc(block, l) };
        }
    }
}

//! A component's global allocator: small blocks, once freed, wait on a list of their
//! size and are handed out again, and only the rest goes to the allocator behind
//! (wasi-libc's dlmalloc, `std::alloc::System`, in a component).
//!
//! Why: an instance serves many requests (Spin's instance reuse), and each request
//! allocates and frees the same small things again: header names and values, span ids,
//! JSON nodes. dlmalloc spends on each of those its bins, its splitting and, on `free`,
//! its coalescing with the neighbours. Callgrind counted dlmalloc's `malloc` and `free`
//! at 69 k of the 1,176 k instructions of a `GET /v1/models` through the shipped chain
//! (108 k with their wrappers), the `waf` guest's at 28 k; with this crate the request
//! took 1,100 k (`docs/measurements/benchmarks.md`, "A size-class cache in front of the
//! guests' dlmalloc"). Here a block of a cached size is a pop from or a push onto a list.
//!
//! What it costs: a block stays the size it was carved at, and a freed block waits for a
//! request of its own size class, so memory one size class holds is not lent to another;
//! each class keeps at most [`MAX_CACHED_BYTES`] of free blocks and gives the rest back,
//! so the lists hold at most 4 MiB (64 classes) that dlmalloc could have lent elsewhere.
//! Linear memory never shrinks, whichever allocator frees. Measured: an idle instance of
//! the shipped chain held about 0.8 MiB more than with dlmalloc alone (one bench run
//! each, `docs/measurements/benchmarks.md`).
//!
//! A component links it by naming this crate (`use chatgate_guest_alloc as _;`): on Wasm,
//! the crate declares the global allocator itself.
#![cfg_attr(not(test), no_std)]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;

/// Blocks are multiples of this many bytes.
pub const GRANULE: usize = 8;

/// The alignment the lists serve, what `malloc` promises on wasm32 (Rust's `System` asks
/// dlmalloc for more through `posix_memalign`); a block aligned beyond it goes straight to
/// the allocator behind.
pub const ALIGN: usize = 8;

/// The largest block kept on a list; larger ones go straight to the allocator behind.
pub const MAX_CACHED_SIZE: usize = 512;

/// The free bytes one size class may hold; a block freed beyond that is given back.
pub const MAX_CACHED_BYTES: usize = 64 << 10;

const CLASSES: usize = MAX_CACHED_SIZE / GRANULE;

/// The allocator: size classes of [`GRANULE`] bytes up to [`MAX_CACHED_SIZE`] in front of
/// `A`.
pub struct SizeClasses<A> {
    behind: A,
    lists: UnsafeCell<[List; CLASSES]>,
    /// Whether freed blocks are kept ([`SizeClasses::pause`]).
    keeping: UnsafeCell<bool>,
}

#[derive(Clone, Copy)]
struct List {
    /// The first free block; each free block's first word points to the next.
    head: *mut u8,
    len: usize,
}

const EMPTY: List = List {
    head: ptr::null_mut(),
    len: 0,
};

// Sound only without threads: the lists are not locked. A component on `wasm32-wasip2` is
// one thread, and no code of its runs while an allocation is under way: this allocator
// makes no host call, so the host cannot call back into the guest (`cabi_realloc`, an
// export) from inside it. That is the component model's rule as read, not something a
// test here exercises; the end-to-end suite runs every component on this allocator.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[allow(unsafe_code)]
unsafe impl<A: Sync> Sync for SizeClasses<A> {}

impl<A> SizeClasses<A> {
    /// The allocator in front of `behind`, its lists empty.
    pub const fn new(behind: A) -> Self {
        Self {
            behind,
            lists: UnsafeCell::new([EMPTY; CLASSES]),
            keeping: UnsafeCell::new(true),
        }
    }
}

/// The size class of `layout`, if it has one: `None` for a block larger than
/// [`MAX_CACHED_SIZE`] or aligned beyond [`ALIGN`].
fn class_of(size: usize, align: usize) -> Option<usize> {
    if align > ALIGN || size > MAX_CACHED_SIZE || size == 0 {
        return None;
    }
    Some((size - 1) / GRANULE)
}

/// The layout every block of `class` is carved with from the allocator behind (and given
/// back with).
fn block_layout(class: usize) -> Layout {
    // A multiple of GRANULE, at most MAX_CACHED_SIZE, aligned to a power of two: valid.
    match Layout::from_size_align((class + 1) * GRANULE, ALIGN) {
        Ok(layout) => layout,
        Err(_) => unreachable!("size classes are valid layouts"),
    }
}

#[allow(unsafe_code)]
mod global {
    use super::*;

    impl<A: GlobalAlloc> SizeClasses<A> {
        /// Gives every free block back to the allocator behind and keeps none freed from
        /// now on, until [`SizeClasses::resume`]: for a component pre-initialised at build
        /// time, whose snapshot should hold its loaded state, not the blocks its
        /// initialisation freed (the allocator behind reuses them for larger ones).
        pub fn pause(&self) {
            // SAFETY: no other call is under way (see the `Sync` impl).
            unsafe { *self.keeping.get() = false };
            self.give_back();
        }

        /// Keeps freed blocks again, after [`SizeClasses::pause`].
        pub fn resume(&self) {
            // SAFETY: no other call is under way (see the `Sync` impl).
            unsafe { *self.keeping.get() = true };
        }

        /// Gives every free block back to the allocator behind, emptying the lists.
        pub fn give_back(&self) {
            for class in 0..CLASSES {
                // SAFETY: no other call is under way (see the `Sync` impl).
                let list = unsafe { &mut *self.list(class) };
                while !list.head.is_null() {
                    let block = list.head;
                    // SAFETY: as in `alloc`; then the block goes back with the layout it
                    // was carved with.
                    unsafe {
                        list.head = block.cast::<*mut u8>().read();
                        self.behind.dealloc(block, block_layout(class));
                    }
                }
                list.len = 0;
            }
        }
    }

    impl<A> SizeClasses<A> {
        /// The list of `class` (`< CLASSES`, from `class_of`). Borrowed mutably only while
        /// no other call into this allocator is under way (see the `Sync` impl).
        fn list(&self, class: usize) -> *mut List {
            self.lists.get().cast::<List>().wrapping_add(class)
        }
    }

    // SAFETY: every block handed out is at least `layout.size()` bytes, aligned to
    // `ALIGN >= layout.align()` (or comes from `behind` with `layout` itself), and is
    // not handed out again before it is freed; a block carved from `behind` with
    // `block_layout(class)` goes back to it with that layout.
    unsafe impl<A: GlobalAlloc> GlobalAlloc for SizeClasses<A> {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let Some(class) = class_of(layout.size(), layout.align()) else {
                // SAFETY: as the caller promised for `layout`.
                return unsafe { self.behind.alloc(layout) };
            };
            // SAFETY: no other call is under way (single-threaded, not re-entered).
            let list = unsafe { &mut *self.list(class) };
            let block = list.head;
            if block.is_null() {
                // SAFETY: a valid, non-zero layout.
                return unsafe { self.behind.alloc(block_layout(class)) };
            }
            // SAFETY: a free block of this class holds the next one's address in its
            // first word, written by `dealloc`, aligned to ALIGN.
            list.head = unsafe { block.cast::<*mut u8>().read() };
            list.len -= 1;
            block
        }

        unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
            let Some(class) = class_of(layout.size(), layout.align()) else {
                // SAFETY: `block` came from `behind` with `layout` (see `alloc`).
                return unsafe { self.behind.dealloc(block, layout) };
            };
            // SAFETY: no other call is under way.
            let list = unsafe { &mut *self.list(class) };
            // SAFETY: as for the list.
            let keeping = unsafe { *self.keeping.get() };
            if !keeping || (list.len + 1) * block_layout(class).size() > MAX_CACHED_BYTES {
                // SAFETY: every block of this class was carved with `block_layout(class)`.
                return unsafe { self.behind.dealloc(block, block_layout(class)) };
            }
            // SAFETY: the block is ours again, at least GRANULE bytes, aligned to ALIGN (a
            // pointer's alignment or more).
            unsafe { block.cast::<*mut u8>().write(list.head) };
            list.head = block;
            list.len += 1;
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            if class_of(layout.size(), layout.align()).is_none() {
                // SAFETY: as the caller promised for `layout`.
                return unsafe { self.behind.alloc_zeroed(layout) };
            }
            // SAFETY: as for `alloc`; a reused block holds old bytes, so it is zeroed.
            let block = unsafe { self.alloc(layout) };
            if !block.is_null() {
                // SAFETY: the block has at least `layout.size()` bytes.
                unsafe { block.write_bytes(0, layout.size()) };
            }
            block
        }

        unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let old = class_of(layout.size(), layout.align());
            let new = class_of(new_size, layout.align());
            match (old, new) {
                // Still fits the block it has.
                (Some(old), Some(new)) if old == new => block,
                // SAFETY: `block` came from `behind` with `layout`, as the caller promised.
                (None, None) => unsafe { self.behind.realloc(block, layout, new_size) },
                _ => {
                    // SAFETY: `new_size` is non-zero and, rounded up to the alignment, does
                    // not overflow (the caller's promise); a valid layout then.
                    let new_layout =
                        unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
                    // SAFETY: as in `alloc` and `dealloc`; the two blocks are distinct.
                    unsafe {
                        let moved = self.alloc(new_layout);
                        if !moved.is_null() {
                            ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                            self.dealloc(block, layout);
                        }
                        moved
                    }
                }
            }
        }
    }

    /// The components' allocator: wasi-libc's dlmalloc behind the lists.
    #[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
    #[global_allocator]
    static ALLOCATOR: SizeClasses<std::alloc::System> = SizeClasses::new(std::alloc::System);

    /// Runs `initialise` with the component's allocator paused ([`SizeClasses::pause`]):
    /// a `wizer-initialize`'s body, so that the snapshot holds what it loaded and not the
    /// blocks it freed on the way.
    #[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
    pub fn keeping_nothing_freed<T>(initialise: impl FnOnce() -> T) -> T {
        ALLOCATOR.pause();
        let loaded = initialise();
        ALLOCATOR.resume();
        loaded
    }
}

#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
pub use global::keeping_nothing_freed;

#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
extern crate std;

#[cfg(test)]
#[allow(unsafe_code)]
mod tests;

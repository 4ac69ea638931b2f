//! tiktoken's byte-pair merge, applied to one pre-tokenized piece.
//!
//! Both variants mirror tiktoken's `_byte_pair_merge` (short pieces) and
//! `_byte_pair_merge_large` (pieces of `LARGE_PIECE` bytes or more, where the quadratic rescans
//! of the short variant would let one long word cost seconds) decision for decision, so ties
//! between equal ranks resolve the same way.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::vocab::{Rank, Vocab};

const LARGE_PIECE: usize = 100;
const NO_MERGE: Rank = Rank::MAX;

/// Reusable buffers for merging, so a text allocates them once rather than once per piece.
#[derive(Default)]
pub(crate) struct Scratch {
    /// `(start, rank of the merge starting there)`; after merging, the token starts followed
    /// by the piece length.
    parts: Vec<(usize, Rank)>,
}

/// Appends the tokens of `piece` to `out`.
pub(crate) fn encode_piece(
    vocab: &Vocab,
    piece: &[u8],
    scratch: &mut Scratch,
    out: &mut Vec<Rank>,
) {
    if let Some(rank) = vocab.rank(piece) {
        out.push(rank);
        return;
    }
    merge(vocab, piece, &mut scratch.parts);
    for bounds in scratch.parts.windows(2) {
        let token = &piece[bounds[0].0..bounds[1].0];
        match vocab.rank(token) {
            Some(rank) => out.push(rank),
            // Unreachable: parts start as single bytes and only merge into tokens. Spelling
            // the bytes out keeps the count honest should that ever break.
            None => out.extend(
                token
                    .iter()
                    .map(|&byte| vocab.byte_ranks[usize::from(byte)]),
            ),
        }
    }
}

/// How many tokens `piece` encodes to.
pub(crate) fn count_piece(vocab: &Vocab, piece: &[u8], scratch: &mut Scratch) -> usize {
    if vocab.rank(piece).is_some() {
        return 1;
    }
    merge(vocab, piece, &mut scratch.parts);
    scratch.parts.len() - 1
}

/// Leaves in `parts` the start of each token of `piece` (at least 2 bytes long), then its length.
fn merge(vocab: &Vocab, piece: &[u8], parts: &mut Vec<(usize, Rank)>) {
    if piece.len() < LARGE_PIECE {
        merge_small(vocab, piece, parts);
    } else {
        merge_large(vocab, piece, parts);
    }
}

fn merge_small(vocab: &Vocab, piece: &[u8], parts: &mut Vec<(usize, Rank)>) {
    parts.clear();
    let mut min_rank = (NO_MERGE, usize::MAX);
    for start in 0..piece.len() - 1 {
        let rank = vocab.rank(&piece[start..start + 2]).unwrap_or(NO_MERGE);
        if rank < min_rank.0 {
            min_rank = (rank, start);
        }
        parts.push((start, rank));
    }
    parts.push((piece.len() - 1, NO_MERGE));
    parts.push((piece.len(), NO_MERGE));

    // The rank of merging part `i` with its right neighbour, computed before part `i + 1` is
    // removed (hence `i + 3`).
    let merged_rank = |parts: &[(usize, Rank)], i: usize| {
        if i + 3 < parts.len() {
            vocab
                .rank(&piece[parts[i].0..parts[i + 3].0])
                .unwrap_or(NO_MERGE)
        } else {
            NO_MERGE
        }
    };

    while min_rank.0 != NO_MERGE {
        let i = min_rank.1;
        if i > 0 {
            parts[i - 1].1 = merged_rank(parts, i - 1);
        }
        parts[i].1 = merged_rank(parts, i);
        parts.remove(i + 1);

        min_rank = (NO_MERGE, usize::MAX);
        for (i, &(_, rank)) in parts[..parts.len() - 1].iter().enumerate() {
            if rank < min_rank.0 {
                min_rank = (rank, i);
            }
        }
    }
}

/// Per byte position: the token starting there (if one does) and the merge with its right
/// neighbour.
struct State {
    prev: usize,
    end: usize,
    next_end: usize,
    next_rank: Rank,
}

fn merge_large(vocab: &Vocab, piece: &[u8], parts: &mut Vec<(usize, Rank)>) {
    let mut state = Vec::with_capacity(piece.len());
    state.push(State {
        prev: usize::MAX,
        end: 1,
        next_end: 2,
        next_rank: NO_MERGE,
    });
    // Pops the lowest rank first and, among equal ranks, the leftmost merge.
    let mut heap = BinaryHeap::with_capacity(piece.len());
    for start in 0..piece.len() - 1 {
        if let Some(rank) = vocab.rank(&piece[start..start + 2]) {
            heap.push(Reverse((rank, start)));
            state[start].next_rank = rank;
        }
        state.push(State {
            prev: start,
            end: start + 2,
            next_end: start + 3,
            next_rank: NO_MERGE,
        });
    }

    let potential_merge = |state: &mut [State],
                           heap: &mut BinaryHeap<Reverse<(Rank, usize)>>,
                           start: usize,
                           next_end: usize| {
        state[start].next_end = next_end;
        state[start].next_rank = NO_MERGE;
        if next_end <= piece.len()
            && let Some(rank) = vocab.rank(&piece[start..next_end])
        {
            heap.push(Reverse((rank, start)));
            state[start].next_rank = rank;
        }
    };

    while let Some(Reverse((rank, left_start))) = heap.pop() {
        if rank == NO_MERGE {
            break;
        }
        if rank != state[left_start].next_rank {
            // Superseded by a later merge next to it.
            continue;
        }
        let right_start = state[left_start].end;
        let right_end = state[left_start].next_end;
        let right_next_end = state[right_start].next_end;

        state[left_start].end = right_end;
        potential_merge(&mut state, &mut heap, left_start, right_next_end);
        if right_end < state.len() {
            state[right_end].prev = left_start;
        }
        if left_start > 0 {
            let prev_start = state[left_start].prev;
            potential_merge(&mut state, &mut heap, prev_start, right_end);
        }
        state[right_start].next_rank = NO_MERGE;
    }

    parts.clear();
    let mut start = 0;
    while start < state.len() {
        parts.push((start, NO_MERGE));
        start = state[start].end;
    }
    parts.push((piece.len(), NO_MERGE));
}

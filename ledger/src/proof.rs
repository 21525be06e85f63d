//! Inclusion and consistency proofs (RFC 9162 §2.1.3 and §2.1.4), generated from stored
//! hashes and verified from nothing but the proof, the sizes and the hashes.
//!
//! Proof hashes are ordered bottom-up, as RFC 9162 and Go's `sumdb/tlog` order them.

use std::cell::RefCell;
use std::collections::BTreeSet;

use crate::LedgerError;
use crate::hash::{Hash, largest_power_of_two_below, node_hash};
use crate::tile::Tile;

/// Reads the hash of a complete subtree: tree `level` (0 = leaves), index `n` along it.
pub trait HashReader {
    /// The hash of leaves `n·2^level .. (n+1)·2^level`.
    fn read_hash(&self, level: u8, n: u64) -> Result<Hash, LedgerError>;
}

/// The root of the first `size` leaves, read through `reader` (at most 64 reads).
pub fn tree_root(size: u64, reader: &impl HashReader) -> Result<Hash, LedgerError> {
    if size == 0 {
        return Ok(crate::hash::empty_root());
    }
    subtree_hash(0, size, reader)
}

/// MTH of leaves `lo..hi`; `lo` is aligned as RFC 6962's recursive splits leave it.
fn subtree_hash(lo: u64, hi: u64, reader: &impl HashReader) -> Result<Hash, LedgerError> {
    let n = hi - lo;
    if n.is_power_of_two() && lo.is_multiple_of(n) {
        return reader.read_hash(n.trailing_zeros() as u8, lo / n);
    }
    let k = largest_power_of_two_below(n);
    Ok(node_hash(&subtree_hash(lo, lo + k, reader)?, &subtree_hash(lo + k, hi, reader)?))
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves (RFC 6962 `PATH`).
pub fn prove_inclusion(index: u64, size: u64, reader: &impl HashReader) -> Result<Vec<Hash>, LedgerError> {
    if index >= size {
        return Err(LedgerError::OutOfRange("leaf index is not below the tree size"));
    }
    let mut proof = Vec::new();
    let (mut lo, mut hi) = (0, size);
    // Walk down from the root; collect siblings top-down, then reverse to bottom-up.
    while hi - lo > 1 {
        let k = largest_power_of_two_below(hi - lo);
        if index < lo + k {
            proof.push(subtree_hash(lo + k, hi, reader)?);
            hi = lo + k;
        } else {
            proof.push(subtree_hash(lo, lo + k, reader)?);
            lo += k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// The consistency proof from the tree of `old` leaves to the tree of `new` leaves
/// (RFC 6962 `PROOF(m, D[n])`); `1 <= old <= new`, empty when they are equal.
pub fn prove_consistency(old: u64, new: u64, reader: &impl HashReader) -> Result<Vec<Hash>, LedgerError> {
    if old == 0 || old > new {
        return Err(LedgerError::OutOfRange("consistency needs 1 <= from <= to"));
    }
    let mut proof = Vec::new();
    let (mut m, mut lo, mut hi, mut whole) = (old, 0, new, true);
    while m != hi - lo {
        let k = largest_power_of_two_below(hi - lo);
        if m <= k {
            proof.push(subtree_hash(lo + k, hi, reader)?);
            hi = lo + k;
        } else {
            proof.push(subtree_hash(lo, lo + k, reader)?);
            m -= k;
            lo += k;
            whole = false;
        }
    }
    if !whole {
        proof.push(subtree_hash(lo, hi, reader)?);
    }
    proof.reverse();
    Ok(proof)
}

/// Checks that `leaf` is leaf `index` of the tree of `size` leaves whose root is `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(proof: &[Hash], index: u64, size: u64, leaf: &Hash, root: &Hash) -> Result<(), LedgerError> {
    if index >= size {
        return Err(LedgerError::OutOfRange("leaf index is not below the tree size"));
    }
    let (mut fn_, mut sn, mut r) = (index, size - 1, *leaf);
    for p in proof {
        if sn == 0 {
            return Err(LedgerError::ProofMismatch("inclusion proof is too long"));
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(LedgerError::ProofMismatch("inclusion proof is too short"));
    }
    if r != *root {
        return Err(LedgerError::ProofMismatch("inclusion proof does not lead to the root"));
    }
    Ok(())
}

/// Checks that the tree of `new` leaves with root `new_root` extends the tree of `old` leaves
/// with root `old_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(proof: &[Hash], old: u64, old_root: &Hash, new: u64, new_root: &Hash) -> Result<(), LedgerError> {
    if old == 0 || old > new {
        return Err(LedgerError::OutOfRange("consistency needs 1 <= from <= to"));
    }
    if old == new {
        return match (proof.is_empty(), old_root == new_root) {
            (true, true) => Ok(()),
            (false, _) => Err(LedgerError::ProofMismatch("proof between equal sizes must be empty")),
            (true, false) => Err(LedgerError::ProofMismatch("equal sizes with different roots")),
        };
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return Err(LedgerError::ProofMismatch("consistency proof is empty"));
    };
    let (mut fn_, mut sn) = (old - 1, new - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if sn == 0 {
            return Err(LedgerError::ProofMismatch("consistency proof is too long"));
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(LedgerError::ProofMismatch("consistency proof is too short"));
    }
    if fr != *old_root || sr != *new_root {
        return Err(LedgerError::ProofMismatch("consistency proof does not lead to both roots"));
    }
    Ok(())
}

/// The tiles (at their width for `stored_size`, the stored tree's size) that
/// [`prove_inclusion`]`(index, size)` reads; fetch them into a [`crate::TileHashReader`].
pub fn inclusion_tiles(index: u64, size: u64, stored_size: u64) -> Result<Vec<Tile>, LedgerError> {
    check_within(size, stored_size)?;
    tiles_read_by(stored_size, |r| prove_inclusion(index, size, r).map(drop))
}

/// The tiles that [`prove_consistency`]`(old, new)` reads, at their width for `stored_size`.
pub fn consistency_tiles(old: u64, new: u64, stored_size: u64) -> Result<Vec<Tile>, LedgerError> {
    check_within(new, stored_size)?;
    tiles_read_by(stored_size, |r| prove_consistency(old, new, r).map(drop))
}

/// The tiles that [`tree_root`]`(size)` reads, at their width for `stored_size`.
pub fn root_tiles(size: u64, stored_size: u64) -> Result<Vec<Tile>, LedgerError> {
    check_within(size, stored_size)?;
    tiles_read_by(stored_size, |r| tree_root(size, r).map(drop))
}

fn check_within(size: u64, stored_size: u64) -> Result<(), LedgerError> {
    if size > stored_size {
        return Err(LedgerError::OutOfRange("tree size is beyond the stored tree"));
    }
    Ok(())
}

/// Runs `op` against a reader that records which tiles it touches.
fn tiles_read_by(stored_size: u64, op: impl FnOnce(&Recorder) -> Result<(), LedgerError>) -> Result<Vec<Tile>, LedgerError> {
    let recorder = Recorder { stored_size, tiles: RefCell::new(BTreeSet::new()) };
    op(&recorder)?;
    Ok(recorder.tiles.into_inner().into_iter().collect())
}

struct Recorder {
    stored_size: u64,
    tiles: RefCell<BTreeSet<Tile>>,
}

impl HashReader for Recorder {
    fn read_hash(&self, level: u8, n: u64) -> Result<Hash, LedgerError> {
        let (tile, _) = Tile::for_hash(level, n, self.stored_size).ok_or(LedgerError::OutOfRange("hash is not complete in this tree"))?;
        self.tiles.borrow_mut().insert(tile);
        Ok(Hash::default())
    }
}

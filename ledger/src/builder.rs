//! The incremental tile builder: a tree's small, serializable state and what one batch of new
//! leaves adds to it.
//!
//! The state is the content of the right edge's partial tiles: for each tile level `L`, the
//! `(size >> 8·L) mod 256` hashes of tree level `8·L` not yet rolled into a full tile. That is
//! exactly what the stored partial tiles for `size` hold, so the state is both a value the
//! caller can store next to the log position ([`TreeState::to_bytes`], at most 8 levels × 255
//! hashes) and recoverable from the tiles alone ([`TreeState::from_tiles`]).
//!
//! Crash discipline for the caller: [`TreeState::append`] is pure; write every returned tile
//! (put-if-absent), then save the returned state with the log position it covers in one write.
//! A crash before that save replays the same leaves from the old state and produces the same
//! tiles byte for byte, so the put-if-absent writes are idempotent.

use crate::LedgerError;
use crate::hash::{HASH_SIZE, Hash, empty_root, node_hash, perfect_root};
use crate::tile::{TILE_HEIGHT, TILE_WIDTH, Tile, tile_hashes};

const STATE_VERSION: u8 = 1;
const LEVELS: usize = 64 / TILE_HEIGHT as usize;

/// The state of one tree: its size and the hashes of its right-edge partial tiles.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct TreeState {
    size: u64,
    /// `partials[L]`: the level-`8·L` hashes of the partial tile at tile level `L`.
    partials: Vec<Vec<Hash>>,
}

/// What [`TreeState::append`] produced.
#[derive(Clone, Debug)]
pub struct Appended {
    /// The tree after the batch.
    pub state: TreeState,
    /// Its root.
    pub root: Hash,
    /// Tiles to write (put-if-absent), full tiles completed by the batch and the new partial
    /// tiles of the right edge, lower levels first.
    pub tiles: Vec<(Tile, Vec<u8>)>,
}

impl TreeState {
    /// The empty tree.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree's root (RFC 6962 MTH; `SHA-256("")` when empty).
    pub fn root(&self) -> Hash {
        // Complete subtrees of the right edge, largest (highest level) first.
        let mut edge: Vec<Hash> = Vec::new();
        for partial in self.partials.iter().rev() {
            let mut start = 0;
            for bit in (0..TILE_HEIGHT).rev() {
                let len = 1usize << bit;
                if partial.len() & len != 0 {
                    edge.push(perfect_root(&partial[start..start + len]));
                    start += len;
                }
            }
        }
        let mut hashes = edge.into_iter().rev();
        let Some(mut root) = hashes.next() else { return empty_root() };
        for left in hashes {
            root = node_hash(&left, &root);
        }
        root
    }

    /// Adds `leaf_hashes` (see [`crate::leaf_hash`]) and returns the new state, its root and
    /// the tiles to write. `self` is untouched, so a failed write just retries from it.
    pub fn append(&self, leaf_hashes: &[Hash]) -> Appended {
        let mut state = self.clone();
        let mut tiles = Vec::new();
        for leaf in leaf_hashes {
            state.push(*leaf, &mut |tile, data| tiles.push((tile, data)));
        }
        for level in 0..state.partials.len() {
            let shift = level as u32 * u32::from(TILE_HEIGHT);
            let (before, after) = (self.size >> shift, state.size >> shift);
            let width = state.partials[level].len();
            if before != after && width > 0 {
                let tile = Tile { level: level as u8, index: after >> TILE_HEIGHT, width: width as u16 };
                tiles.push((tile, concat(&state.partials[level])));
            }
        }
        tiles.sort_by_key(|(tile, _)| (tile.level, tile.index, tile.width));
        let root = state.root();
        Appended { state, root, tiles }
    }

    /// Adds one leaf without producing tiles (for an offline rebuild of the root).
    pub fn push_leaf(&mut self, leaf: Hash) {
        self.push(leaf, &mut |_, _| {});
    }

    fn push(&mut self, leaf: Hash, full_tile: &mut impl FnMut(Tile, Vec<u8>)) {
        let mut carry = leaf;
        let mut level = 0;
        loop {
            if self.partials.len() == level {
                self.partials.push(Vec::new());
            }
            let partial = &mut self.partials[level];
            partial.push(carry);
            if partial.len() < usize::from(TILE_WIDTH) {
                break;
            }
            let shift = level as u32 * u32::from(TILE_HEIGHT);
            // Index of this tile: how many full tiles of this level precede it.
            let index = (self.size >> shift) >> TILE_HEIGHT;
            carry = perfect_root(partial);
            full_tile(Tile { level: level as u8, index, width: TILE_WIDTH }, concat(partial));
            partial.clear();
            level += 1;
        }
        self.size += 1;
        while self.partials.last().is_some_and(Vec::is_empty) {
            self.partials.pop();
        }
    }

    /// Serializes the state: version byte, size (u64 big-endian), then per tile level a count
    /// byte and that many hashes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![STATE_VERSION];
        out.extend_from_slice(&self.size.to_be_bytes());
        for partial in &self.partials {
            out.push(partial.len() as u8);
            for hash in partial {
                out.extend_from_slice(&hash.0);
            }
        }
        out
    }

    /// Parses [`TreeState::to_bytes`]; a state whose partial tiles do not match its size is
    /// refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LedgerError> {
        let malformed = LedgerError::Malformed("tree state");
        let (&version, rest) = bytes.split_first().ok_or(LedgerError::Malformed("tree state is empty"))?;
        if version != STATE_VERSION {
            return Err(LedgerError::Malformed("unknown tree state version"));
        }
        let (size_bytes, mut rest) = rest.split_at_checked(8).ok_or(LedgerError::Malformed("tree state"))?;
        let size = u64::from_be_bytes(size_bytes.try_into().map_err(|_| LedgerError::Malformed("tree state"))?);
        let mut partials = Vec::new();
        while let Some((&count, tail)) = rest.split_first() {
            let (hashes, tail) = tail.split_at_checked(usize::from(count) * HASH_SIZE).ok_or(LedgerError::Malformed("tree state"))?;
            partials.push(tile_hashes(hashes)?);
            rest = tail;
        }
        let state = Self { size, partials };
        if !state.shape_matches_size() {
            return Err(malformed);
        }
        Ok(state)
    }

    fn shape_matches_size(&self) -> bool {
        self.partials.len() <= LEVELS
            && self.partials.last().is_none_or(|p| !p.is_empty())
            && (0..LEVELS).all(|level| {
                let expected = (self.size >> (level as u32 * u32::from(TILE_HEIGHT))) & (u64::from(TILE_WIDTH) - 1);
                self.partials.get(level).map_or(0, Vec::len) as u64 == expected
            })
    }

    /// The partial tiles that hold the state of a tree of `size` leaves.
    pub fn state_tiles(size: u64) -> Vec<Tile> {
        (0..LEVELS)
            .filter_map(|level| {
                let shift = level as u32 * u32::from(TILE_HEIGHT);
                let width = (size >> shift) & (u64::from(TILE_WIDTH) - 1);
                (width > 0).then(|| Tile { level: level as u8, index: (size >> shift) >> TILE_HEIGHT, width: width as u16 })
            })
            .collect()
    }

    /// Rebuilds the state of a tree of `size` leaves from its stored partial tiles
    /// ([`TreeState::state_tiles`]); `read` returns a tile's data, `None` when it is missing.
    pub fn from_tiles(size: u64, mut read: impl FnMut(&Tile) -> Option<Vec<u8>>) -> Result<Self, LedgerError> {
        let mut partials = vec![Vec::new(); LEVELS];
        for tile in Self::state_tiles(size) {
            let data = read(&tile).ok_or_else(|| LedgerError::MissingTile(tile.path()))?;
            let hashes = tile_hashes(&data)?;
            if hashes.len() != usize::from(tile.width) {
                return Err(LedgerError::Malformed("tile data length does not match its width"));
            }
            partials[usize::from(tile.level)] = hashes;
        }
        while partials.last().is_some_and(Vec::is_empty) {
            partials.pop();
        }
        Ok(Self { size, partials })
    }
}

fn concat(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.0).collect()
}

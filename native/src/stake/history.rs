//! The stake snapshots of a ledger: the balances after each of its last blocks,
//! from one Fenwick tree and the blocks' changes. Pure Rust, no Python.
//!
//! The tree holds the balances after the tip block and is updated in place, so
//! a block costs O(changed accounts · log n), never a copy of the table. Each
//! kept block keeps its changes (account, old and new balance, old delegate):
//! the balances after an older block `a` are the tip's, with the accounts that
//! blocks `a + 1 ..= tip` changed set back to their old balance and the accounts
//! they created cut off. Sortition on that snapshot descends the tip's tree
//! through an [`Overlay`] of those few accounts (built once per snapshot and
//! tip, O(m log n) for m changed accounts), without materialising anything of
//! size n.
//!
//! Blocks come and go at the tip: [`History::push`] applies one, [`History::pop`]
//! undoes the tip block from its undo record (a rollback), and [`History::recall`]
//! adds the block before the oldest kept one from its undo record (reopening a
//! ledger). Every state gets a serial number that is never reused, so that a
//! snapshot taken before a rollback cannot silently read the state of another
//! branch.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use super::fenwick::{Seats, StakeError, Stakes, TOTAL_LIMIT};

/// The delegate of an account that has none (or no account).
pub const NO_DELEGATE: u64 = u64::MAX;

/// One pre-existing account that a block changed (its balance, nonce or delegate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub id: usize,
    /// The balance before the block.
    pub old: u64,
    /// The balance after the block.
    pub new: u64,
    /// The delegate before the block.
    pub old_delegate: u64,
}

/// What one block changed: the accounts before it (the id of the first it
/// created) and its changes of pre-existing accounts, ascending ids.
#[derive(Clone, Debug, PartialEq, Eq)]
struct BlockDelta {
    accounts_before: usize,
    changes: Vec<Change>,
}

impl BlockDelta {
    fn find(&self, id: usize) -> Option<&Change> {
        self.changes
            .binary_search_by_key(&id, |c| c.id)
            .ok()
            .and_then(|i| self.changes.get(i))
    }
}

/// An entry of an undo record: an account and its old balance and delegate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Undo {
    pub id: usize,
    pub balance: u64,
    pub delegate: u64,
}

/// Why a history operation was refused; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HistoryError {
    Stake(StakeError),
    /// The snapshot after `after` is past the tip or older than the kept blocks.
    NotKept {
        after: u64,
        tip: u64,
        oldest: u64,
    },
    /// The snapshot's state was rolled back (its serial is gone).
    RolledBack {
        after: u64,
    },
    /// A block's changes do not fit the state they are applied to.
    Mismatch(String),
}

impl From<StakeError> for HistoryError {
    fn from(e: StakeError) -> Self {
        Self::Stake(e)
    }
}

impl std::fmt::Display for HistoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stake(e) => e.fmt(f),
            Self::NotKept { after, tip, oldest } if after > tip => write!(
                f,
                "the balances after block {after} are not known: the tip is block {tip}"
            ),
            Self::NotKept { after, oldest, .. } => write!(
                f,
                "the balances after block {after} are no longer kept (the oldest kept is after \
                 block {oldest})"
            ),
            Self::RolledBack { after } => write!(
                f,
                "the balances after block {after} of this snapshot were rolled back"
            ),
            Self::Mismatch(why) => f.write_str(why),
        }
    }
}

/// The balances after block `after` as a correction of the tip's tree: the
/// accounts changed since, with their balance then, and where each one moves
/// the prefix sums.
#[derive(Debug, Default)]
pub struct Overlay {
    /// Accounts after block `after`.
    len: usize,
    /// W after block `after`.
    total: u64,
    /// The accounts (below `len`) whose balance then differs from the tip's, ascending.
    ids: Vec<usize>,
    /// Their balance then.
    old: Vec<u64>,
    /// `shift[k]`: the sum of `old - tip` over `ids[..=k]` (mod 2^64; the sums it
    /// corrects are exact).
    shift: Vec<u64>,
    /// `reach[k]`: the prefix sum then through account `ids[k]` (nondecreasing).
    reach: Vec<u64>,
}

impl Overlay {
    /// The overlay of the balances `then` (account -> balance after block `after`, for
    /// the accounts changed since) over `tip`, for the first `len` accounts.
    fn new(tip: &Stakes, len: usize, then: Vec<(usize, u64)>) -> Self {
        let mut overlay = Overlay {
            len,
            ..Overlay::default()
        };
        let mut shift = 0u64;
        for (id, old) in then {
            let now = tip.balance(id).unwrap_or(0);
            if id >= len || old == now {
                continue;
            }
            shift = shift.wrapping_add(old.wrapping_sub(now));
            overlay.ids.push(id);
            overlay.old.push(old);
            overlay.shift.push(shift);
            overlay
                .reach
                .push(tip.prefix_sum(id + 1).wrapping_add(shift));
        }
        overlay.total = tip.prefix_sum(len).wrapping_add(shift);
        overlay
    }

    /// Bytes this overlay holds.
    pub fn nbytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.ids.capacity() * 32
    }
}

/// The balances after one block: the tip's tree, through an overlay unless it is the tip.
pub struct Snapshot<'a> {
    tip: &'a Stakes,
    overlay: Option<Arc<Overlay>>,
}

impl<'a> Snapshot<'a> {
    /// The balances of a table of their own.
    pub fn of(stakes: &'a Stakes) -> Self {
        Snapshot {
            tip: stakes,
            overlay: None,
        }
    }

    pub fn len(&self) -> usize {
        self.overlay.as_ref().map_or(self.tip.len(), |o| o.len)
    }

    pub fn balance(&self, account: usize) -> Option<u64> {
        match &self.overlay {
            None => self.tip.balance(account),
            Some(o) if account >= o.len => None,
            Some(o) => match o.ids.binary_search(&account) {
                Ok(k) => o.old.get(k).copied(),
                Err(_) => self.tip.balance(account),
            },
        }
    }

    /// The balances as a table of their own, in O(n).
    pub fn to_stakes(&self) -> Stakes {
        let mut stakes = self.tip.snapshot();
        if let Some(o) = &self.overlay {
            stakes.truncate(o.len);
            let changes: Vec<(usize, u64)> =
                o.ids.iter().copied().zip(o.old.iter().copied()).collect();
            // The balances of a past state: their total was below 2^63.
            let _ = stakes.update(&changes);
        }
        stakes
    }

    /// Bytes of its own (the tip's tree is shared).
    pub fn nbytes(&self) -> usize {
        self.overlay.as_ref().map_or(0, |o| o.nbytes())
    }
}

impl Seats for Snapshot<'_> {
    fn total(&self) -> u64 {
        self.overlay.as_ref().map_or(self.tip.total(), |o| o.total)
    }

    /// With an overlay, the seat of `x` lies after the last changed account whose
    /// prefix sum then is `<= x` (`ids[k - 1]`), and at most at the first one whose
    /// prefix sum then exceeds it (`ids[k]`). In between, the prefix sums then are the
    /// tip's plus `shift[k - 1]`: the seat is the tip's seat of `x - shift[k - 1]`,
    /// capped at `ids[k]`.
    fn seats_of(&self, xs: &mut [u64]) {
        let Some(o) = &self.overlay else {
            self.tip.seats_of(xs);
            return;
        };
        let mut caps = Vec::with_capacity(xs.len());
        for x in xs.iter_mut() {
            let k = o.reach.partition_point(|&p| p <= *x);
            if let Some(&shift) = k.checked_sub(1).and_then(|i| o.shift.get(i)) {
                *x = x.wrapping_sub(shift);
            }
            caps.push(o.ids.get(k).map_or(u64::MAX, |&id| id as u64));
        }
        self.tip.seats_of(xs);
        for (x, cap) in xs.iter_mut().zip(caps) {
            *x = (*x).min(cap);
        }
    }
}

/// The balances after the tip block and the changes of the last `keep` blocks.
#[derive(Debug)]
pub struct History {
    tip: Stakes,
    /// The block whose balances `tip` holds (0: the genesis).
    block: u64,
    /// The changes of blocks `block - blocks.len() + 1 ..= block`, oldest first.
    blocks: VecDeque<BlockDelta>,
    /// The serial of the state after each block `block - blocks.len() ..= block`.
    serials: VecDeque<u64>,
    next_serial: u64,
    keep: usize,
    /// Overlays built since the tip last changed, by `after`.
    overlays: Mutex<HashMap<u64, Arc<Overlay>>>,
}

/// The total after replacing `old` balances by `new` ones and adding `created`, if below 2^63.
fn checked_total(total: u64, changes: &[(u64, u64)], created: &[u64]) -> Result<u64, StakeError> {
    let mut t = u128::from(total);
    for &(old, new) in changes {
        t = t - u128::from(old) + u128::from(new);
    }
    t += created.iter().map(|&b| u128::from(b)).sum::<u128>();
    if t >= u128::from(TOTAL_LIMIT) {
        return Err(StakeError::UpdateOverflow { total: t });
    }
    Ok(t as u64)
}

impl History {
    /// The history of a ledger whose tip is `block`, with the balances after it;
    /// it keeps the changes of at most `keep` blocks.
    pub fn new(balances: Vec<u64>, block: u64, keep: usize) -> Result<Self, StakeError> {
        Ok(History {
            tip: Stakes::new(balances)?,
            block,
            blocks: VecDeque::new(),
            serials: VecDeque::from([0]),
            next_serial: 1,
            keep,
            overlays: Mutex::new(HashMap::new()),
        })
    }

    /// The tip block.
    pub fn block(&self) -> u64 {
        self.block
    }

    /// The oldest block whose balances are kept.
    pub fn oldest(&self) -> u64 {
        self.block - self.blocks.len() as u64
    }

    pub fn keep(&self) -> usize {
        self.keep
    }

    pub fn tip(&self) -> &Stakes {
        &self.tip
    }

    /// Bytes held: the tree, the kept changes, the overlays.
    pub fn nbytes(&self) -> usize {
        let changes: usize = self
            .blocks
            .iter()
            .map(|b| b.changes.capacity() * std::mem::size_of::<Change>())
            .sum();
        let overlays: usize = self.cached().values().map(|o| o.nbytes()).sum();
        std::mem::size_of::<Self>() + self.tip.nbytes() + changes + overlays
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Overlay>>> {
        self.overlays.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fresh_serial(&mut self) -> u64 {
        let s = self.next_serial;
        self.next_serial += 1;
        s
    }

    /// Where the state after block `after` is in `serials`, if it is kept.
    fn index(&self, after: u64) -> Result<usize, HistoryError> {
        let oldest = self.oldest();
        if after > self.block || after < oldest {
            return Err(HistoryError::NotKept {
                after,
                tip: self.block,
                oldest,
            });
        }
        Ok((after - oldest) as usize)
    }

    /// The serial of the state after block `after`, if kept.
    pub fn serial(&self, after: u64) -> Result<u64, HistoryError> {
        let i = self.index(after)?;
        Ok(self.serials.get(i).copied().unwrap_or(0))
    }

    /// The accounts after block `after` (kept).
    fn len_after(&self, index: usize) -> usize {
        self.blocks
            .get(index)
            .map_or(self.tip.len(), |b| b.accounts_before)
    }

    /// The balances after block `after`, if it is kept and its state has serial `serial`.
    pub fn snapshot(&self, after: u64, serial: u64) -> Result<Snapshot<'_>, HistoryError> {
        let i = self.index(after)?;
        if self.serials.get(i) != Some(&serial) {
            return Err(HistoryError::RolledBack { after });
        }
        if after == self.block {
            return Ok(Snapshot {
                tip: &self.tip,
                overlay: None,
            });
        }
        let overlay = {
            let mut cache = self.cached();
            Arc::clone(
                cache
                    .entry(after)
                    .or_insert_with(|| Arc::new(self.overlay(i))),
            )
        };
        Ok(Snapshot {
            tip: &self.tip,
            overlay: Some(overlay),
        })
    }

    /// The overlay of the state after the block at `index` (< blocks.len()): for each
    /// account changed by a later block, its balance before the first of them.
    fn overlay(&self, index: usize) -> Overlay {
        let len = self.len_after(index);
        let mut then: Vec<(usize, usize, u64)> = Vec::new();
        for (order, b) in self.blocks.iter().enumerate().skip(index) {
            then.extend(
                b.changes
                    .iter()
                    .filter(|c| c.id < len)
                    .map(|c| (c.id, order, c.old)),
            );
        }
        then.sort_unstable_by_key(|&(id, order, _)| (id, order));
        then.dedup_by_key(|&mut (id, _, _)| id);
        Overlay::new(
            &self.tip,
            len,
            then.into_iter().map(|(id, _, old)| (id, old)).collect(),
        )
    }

    /// The delegate of `account` after block `after` (kept): `current` (the tip's) unless a
    /// later block changed the account, `NO_DELEGATE` when the account did not exist then.
    pub fn delegate(&self, after: u64, account: usize, current: u64) -> Result<u64, HistoryError> {
        let i = self.index(after)?;
        if account >= self.len_after(i) {
            return Ok(NO_DELEGATE);
        }
        for b in self.blocks.iter().skip(i) {
            if let Some(c) = b.find(account) {
                return Ok(c.old_delegate);
            }
        }
        Ok(current)
    }

    /// Applies block `block + 1`: the accounts before it, its changes of pre-existing
    /// accounts (any order), the balances of the accounts it created. Each old balance
    /// must be the tip's. All or nothing.
    pub fn push(
        &mut self,
        accounts_before: usize,
        mut changes: Vec<Change>,
        created: &[u64],
    ) -> Result<(), HistoryError> {
        let n = self.tip.len();
        if accounts_before != n {
            return Err(HistoryError::Mismatch(format!(
                "block {}: {accounts_before} accounts before it, the tip has {n}",
                self.block + 1
            )));
        }
        changes.sort_unstable_by_key(|c| c.id);
        for (i, c) in changes.iter().enumerate() {
            if c.id >= n || changes.get(i + 1).is_some_and(|d| d.id == c.id) {
                return Err(HistoryError::Mismatch(format!(
                    "block {}: account {} is changed twice or did not exist",
                    self.block + 1,
                    c.id
                )));
            }
            if self.tip.balance(c.id) != Some(c.old) {
                return Err(HistoryError::Mismatch(format!(
                    "block {}: account {} had balance {:?}, not {}",
                    self.block + 1,
                    c.id,
                    self.tip.balance(c.id),
                    c.old
                )));
            }
        }
        let pairs: Vec<(u64, u64)> = changes.iter().map(|c| (c.old, c.new)).collect();
        checked_total(self.tip.total(), &pairs, created)?;
        let updates: Vec<(usize, u64)> = changes
            .iter()
            .filter(|c| c.old != c.new)
            .map(|c| (c.id, c.new))
            .collect();
        self.tip.update(&updates)?;
        if let Err(e) = self.tip.extend(created) {
            // Checked above: cannot happen; leave the tip as it was anyway.
            let back: Vec<(usize, u64)> = changes.iter().map(|c| (c.id, c.old)).collect();
            let _ = self.tip.update(&back);
            return Err(e.into());
        }
        self.block += 1;
        self.blocks.push_back(BlockDelta {
            accounts_before,
            changes,
        });
        let serial = self.fresh_serial();
        self.serials.push_back(serial);
        while self.blocks.len() > self.keep {
            self.blocks.pop_front();
            self.serials.pop_front();
        }
        self.cached().clear();
        Ok(())
    }

    /// Undoes the tip block from its undo record (the accounts before it, the old
    /// balance and delegate of each account it changed): a rollback. When its changes
    /// are kept, the record must match them. All or nothing.
    pub fn pop(&mut self, accounts_before: usize, undo: &[Undo]) -> Result<(), HistoryError> {
        if self.block == 0 {
            return Err(HistoryError::Mismatch(
                "the genesis cannot be undone".to_owned(),
            ));
        }
        let n = self.tip.len();
        let mut undo = undo.to_vec();
        undo.sort_unstable_by_key(|u| u.id);
        if accounts_before > n
            || undo.windows(2).any(|w| w[0].id == w[1].id)
            || undo.iter().any(|u| u.id >= accounts_before)
        {
            return Err(HistoryError::Mismatch(format!(
                "the undo record of block {} names accounts the state before it did not have",
                self.block
            )));
        }
        if let Some(kept) = self.blocks.back() {
            let same =
                kept.accounts_before == accounts_before
                    && kept.changes.len() == undo.len()
                    && kept.changes.iter().zip(&undo).all(|(c, u)| {
                        (c.id, c.old, c.old_delegate) == (u.id, u.balance, u.delegate)
                    });
            if !same {
                return Err(HistoryError::Mismatch(format!(
                    "the undo record of block {} does not match its changes",
                    self.block
                )));
            }
        }
        let pairs: Vec<(u64, u64)> = undo
            .iter()
            .map(|u| (self.tip.balance(u.id).unwrap_or(0), u.balance))
            .collect();
        checked_total(self.tip.prefix_sum(accounts_before), &pairs, &[])?;
        self.tip.truncate(accounts_before);
        let back: Vec<(usize, u64)> = undo.iter().map(|u| (u.id, u.balance)).collect();
        // Checked above: the accounts exist and the total stays below 2^63.
        self.tip.update(&back)?;
        self.block -= 1;
        self.blocks.pop_back();
        self.serials.pop_back();
        if self.serials.is_empty() {
            let serial = self.fresh_serial();
            self.serials.push_back(serial);
        }
        self.cached().clear();
        Ok(())
    }

    /// Adds the changes of block `oldest()`, the one before the oldest kept, from its undo
    /// record: on reopening a ledger, so that the snapshots before it are there again.
    pub fn recall(&mut self, accounts_before: usize, undo: &[Undo]) -> Result<(), HistoryError> {
        let block = self.oldest();
        if block == 0 {
            return Err(HistoryError::Mismatch(
                "no block before the genesis".to_owned(),
            ));
        }
        if self.blocks.len() >= self.keep {
            return Err(HistoryError::Mismatch(format!(
                "block {block}: already keeping {} blocks",
                self.keep
            )));
        }
        let len = self.len_after(0);
        let mut undo = undo.to_vec();
        undo.sort_unstable_by_key(|u| u.id);
        if accounts_before > len
            || undo.windows(2).any(|w| w[0].id == w[1].id)
            || undo.iter().any(|u| u.id >= accounts_before)
        {
            return Err(HistoryError::Mismatch(format!(
                "the undo record of block {block} names accounts the state before it did not have"
            )));
        }
        let snapshot_after = self.overlay(0);
        let changes = undo
            .iter()
            .map(|u| {
                let new = match snapshot_after.ids.binary_search(&u.id) {
                    Ok(k) => snapshot_after.old.get(k).copied().unwrap_or(0),
                    Err(_) => self.tip.balance(u.id).unwrap_or(0),
                };
                Change {
                    id: u.id,
                    old: u.balance,
                    new,
                    old_delegate: u.delegate,
                }
            })
            .collect();
        self.blocks.push_front(BlockDelta {
            accounts_before,
            changes,
        });
        let serial = self.fresh_serial();
        self.serials.push_front(serial);
        self.cached().clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fenwick::committee_into;
    use super::*;

    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *state >> 11
    }

    fn model_seat(balances: &[u64], x: u64) -> u64 {
        let mut sum = 0u64;
        for (j, &b) in balances.iter().enumerate() {
            sum += b;
            if sum > x {
                return j as u64;
            }
        }
        panic!("x >= W");
    }

    /// The model: every state's full balances and delegates, and each block's undo record.
    struct Model {
        states: Vec<(Vec<u64>, Vec<u64>)>,
        undos: Vec<(usize, Vec<Undo>)>,
    }

    /// A random block on `balances`/`delegates`: some changed accounts (some with only a
    /// new delegate), some created.
    fn random_block(
        s: &mut u64,
        balances: &[u64],
        delegates: &[u64],
    ) -> (Vec<Change>, Vec<u64>, Vec<u64>, Vec<u64>) {
        let n = balances.len();
        let mut next = balances.to_vec();
        let mut next_delegates = delegates.to_vec();
        let mut changes: Vec<Change> = Vec::new();
        for _ in 0..(lcg(s) % 6) {
            let id = (lcg(s) as usize) % n;
            if changes.iter().any(|c| c.id == id) {
                continue;
            }
            let new = match lcg(s) % 4 {
                0 => balances[id],
                1 => 0,
                _ => lcg(s) % 1000,
            };
            if lcg(s).is_multiple_of(3) {
                next_delegates[id] = lcg(s) % n as u64;
            }
            next[id] = new;
            changes.push(Change {
                id,
                old: balances[id],
                new,
                old_delegate: delegates[id],
            });
        }
        let created: Vec<u64> = (0..(lcg(s) % 3)).map(|_| lcg(s) % 500).collect();
        next.extend(&created);
        next_delegates.extend(created.iter().map(|_| NO_DELEGATE));
        (changes, created, next, next_delegates)
    }

    fn check_state(h: &History, after: u64, serial: u64, balances: &[u64]) {
        let snap = h.snapshot(after, serial).unwrap();
        assert_eq!(snap.len(), balances.len(), "len after {after}");
        let total: u64 = balances.iter().sum();
        assert_eq!(snap.total(), total, "total after {after}");
        for (id, &b) in balances.iter().enumerate() {
            assert_eq!(snap.balance(id), Some(b), "balance {id} after {after}");
        }
        assert_eq!(snap.balance(balances.len()), None);
        if total > 0 {
            let xs: Vec<u64> = (0..total).step_by((total as usize / 97).max(1)).collect();
            let mut seats = xs.clone();
            snap.seats_of(&mut seats);
            for (&x, &seat) in xs.iter().zip(&seats) {
                assert_eq!(seat, model_seat(balances, x), "x = {x} after {after}");
            }
            let mut committee = [0u64; 40];
            committee_into(&snap, &[after as u8; 32], 9, 2, &mut committee).unwrap();
            let mut own = [0u64; 40];
            let stakes = Stakes::new(balances.to_vec()).unwrap();
            committee_into(&stakes, &[after as u8; 32], 9, 2, &mut own).unwrap();
            assert_eq!(committee, own, "committee after {after}");
            assert_eq!(snap.to_stakes().total(), total);
        }
    }

    fn check_delegates(h: &History, model: &Model, tip_delegates: &[u64]) {
        for after in h.oldest()..=h.block() {
            let (balances, delegates) = &model.states[after as usize];
            for id in 0..balances.len() + 2 {
                let current = tip_delegates.get(id).copied().unwrap_or(NO_DELEGATE);
                let expected = delegates.get(id).copied().unwrap_or(NO_DELEGATE);
                assert_eq!(
                    h.delegate(after, id, current).unwrap(),
                    expected,
                    "delegate of {id} after {after}"
                );
            }
        }
    }

    #[test]
    fn every_kept_snapshot_is_the_model() {
        for seed in 1..40u64 {
            let mut s = seed;
            let n0 = 1 + (lcg(&mut s) % 40) as usize;
            let genesis: Vec<u64> = (0..n0).map(|_| lcg(&mut s) % 1000).collect();
            let keep = 1 + (lcg(&mut s) % 6) as usize;
            let mut h = History::new(genesis.clone(), 0, keep).unwrap();
            let mut model = Model {
                states: vec![(genesis, vec![NO_DELEGATE; n0])],
                undos: Vec::new(),
            };
            for _ in 0..80 {
                let (balances, delegates) = model.states.last().unwrap().clone();
                if lcg(&mut s).is_multiple_of(5) && h.block() > 0 {
                    let (before, undo) = model.undos.pop().unwrap();
                    h.pop(before, &undo).unwrap();
                    model.states.pop();
                } else {
                    let (changes, created, next, next_delegates) =
                        random_block(&mut s, &balances, &delegates);
                    let undo = changes
                        .iter()
                        .map(|c| Undo {
                            id: c.id,
                            balance: c.old,
                            delegate: c.old_delegate,
                        })
                        .collect();
                    h.push(balances.len(), changes, &created).unwrap();
                    model.undos.push((balances.len(), undo));
                    model.states.push((next, next_delegates));
                }
                assert_eq!(h.block() as usize + 1, model.states.len());
                let tip_delegates = model.states.last().unwrap().1.clone();
                for after in h.oldest()..=h.block() {
                    let balances = &model.states[after as usize].0;
                    check_state(&h, after, h.serial(after).unwrap(), balances);
                }
                check_delegates(&h, &model, &tip_delegates);
                if h.oldest() > 0 {
                    let gone = h.oldest() - 1;
                    assert!(matches!(
                        h.snapshot(gone, 0),
                        Err(HistoryError::NotKept { .. })
                    ));
                }
                assert!(h.snapshot(h.block() + 1, 0).is_err());
            }
            // Reopened: the tip alone, then the undo records of the kept blocks.
            let tip = h.block();
            let (balances, tip_delegates) = model.states.last().unwrap().clone();
            let mut reopened = History::new(balances, tip, keep).unwrap();
            let mut back = 0;
            while back < keep && back < tip as usize {
                let (before, undo) = &model.undos[tip as usize - 1 - back];
                reopened.recall(*before, undo).unwrap();
                back += 1;
            }
            for after in reopened.oldest()..=reopened.block() {
                let balances = &model.states[after as usize].0;
                check_state(&reopened, after, reopened.serial(after).unwrap(), balances);
            }
            check_delegates(&reopened, &model, &tip_delegates);
        }
    }

    #[test]
    fn a_snapshot_of_a_rolled_back_state_is_refused() {
        let mut h = History::new(vec![5, 5], 0, 4).unwrap();
        let change = Change {
            id: 0,
            old: 5,
            new: 1,
            old_delegate: NO_DELEGATE,
        };
        h.push(2, vec![change], &[]).unwrap();
        let serial = h.serial(1).unwrap();
        assert_eq!(h.snapshot(1, serial).unwrap().total(), 6);
        h.pop(
            2,
            &[Undo {
                id: 0,
                balance: 5,
                delegate: NO_DELEGATE,
            }],
        )
        .unwrap();
        h.push(2, vec![Change { new: 2, ..change }], &[]).unwrap();
        assert_eq!(
            h.snapshot(1, serial).err(),
            Some(HistoryError::RolledBack { after: 1 })
        );
        assert_eq!(h.snapshot(1, h.serial(1).unwrap()).unwrap().total(), 7);
    }

    #[test]
    fn changes_that_do_not_fit_the_tip_are_refused() {
        let mut h = History::new(vec![5, 5], 0, 4).unwrap();
        let bad = Change {
            id: 0,
            old: 4,
            new: 1,
            old_delegate: NO_DELEGATE,
        };
        assert!(h.push(2, vec![bad], &[]).is_err());
        assert!(h.push(3, vec![], &[]).is_err());
        assert!(h
            .push(2, vec![], &[TOTAL_LIMIT - 5])
            .is_err_and(|e| matches!(e, HistoryError::Stake(_))));
        assert_eq!((h.block(), h.tip().total()), (0, 10), "nothing changed");
        h.push(2, vec![Change { old: 5, ..bad }], &[1]).unwrap();
        let wrong = Undo {
            id: 0,
            balance: 4,
            delegate: NO_DELEGATE,
        };
        assert!(h.pop(2, &[wrong]).is_err());
        assert!(h.pop(3, &[]).is_err());
        assert_eq!((h.block(), h.tip().total()), (1, 7), "nothing changed");
    }
}

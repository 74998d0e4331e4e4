//! The mempool's queue in plain Rust (docs/protocol.md §13, Mempool): no
//! Python here, the transactions are any [`Item`] (a Python `Transaction`
//! in `pool.rs`, plain encodings in the tests below).
//!
//! - Per sender, a chain of consecutive nonces from the account's next one.
//! - Admission in two steps around the signatures: [`Queue::check`] (the
//!   duplicates, the minimum fee and the rules, against each sender's
//!   account after its chain), then [`Queue::admit`] (the limits, eviction
//!   of the cheapest chain end for a newcomer that pays strictly more).
//! - [`Queue::select`]: fee order across senders (higher fee, then earlier
//!   arrival), nonce order within each; [`Queue::recheck`] after a block.
//!
//! Each chain caches its sender's account after it (the pending state),
//! stamped with the account it was computed from, so nothing is rebuilt for
//! the whole pool after a block. When a block changed the account (its
//! senders, recipients, the producer), the cache still answers if the new
//! balance covers what the chain has left past its used nonces
//! ([`Chain::advanced`], O(used)); else the chain is stepped again, O(chain).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};

use crate::state::{Account, Accounts, Key, Layer, Reason, Tx, DELEGATION, TX_SIZE};

/// A transaction id: the SHA-256 of its encoding.
pub type TxId = [u8; 32];

/// A queued transaction as the queue sees it.
pub trait Item {
    /// The 153-byte encoding.
    fn raw(&self) -> &[u8; TX_SIZE];
    fn id(&self) -> &TxId;
}

/// What the queue asks of the account state.
pub trait Rules {
    fn id_of(&self, key: &Key) -> Option<u64>;
    fn account(&self, id: u64) -> Option<Account>;
    /// The mempool's rules: `Accounts::step_layer`, a transaction counting
    /// for its sender alone.
    fn step(&self, layer: &mut Layer, txs: &[u8]) -> Vec<Option<Reason>>;
    /// A block's rules, with credits: `Accounts::check`.
    fn check(&self, txs: &[u8]) -> Vec<Option<Reason>>;
}

impl Rules for Accounts {
    fn id_of(&self, key: &Key) -> Option<u64> {
        Accounts::id_of(self, key)
    }
    fn account(&self, id: u64) -> Option<Account> {
        self.get(id)
    }
    fn step(&self, layer: &mut Layer, txs: &[u8]) -> Vec<Option<Reason>> {
        self.step_layer(layer, txs)
    }
    fn check(&self, txs: &[u8]) -> Vec<Option<Reason>> {
        Accounts::check(self, &[], txs)
    }
}

/// Why the mempool refuses a transaction. The texts are stable: callers
/// and tests compare them (`echorand.ledger.mempool` exports them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A transaction rule (docs/protocol.md §13), or a nonce that does not
    /// continue its sender's chain.
    Rule(Reason),
    AlreadyQueued,
    FeeTooLow,
    BadSignature,
    SenderLimit,
    Full,
}

impl Refusal {
    /// The mempool's own refusals.
    pub const POOL: [Refusal; 5] = [
        Refusal::AlreadyQueued,
        Refusal::FeeTooLow,
        Refusal::BadSignature,
        Refusal::SenderLimit,
        Refusal::Full,
    ];

    pub fn text(self) -> &'static str {
        match self {
            Refusal::Rule(r) => r.text(),
            Refusal::AlreadyQueued => "already in the mempool",
            Refusal::FeeTooLow => "fee below the mempool minimum",
            Refusal::BadSignature => "bad signature",
            Refusal::SenderLimit => "too many queued transactions from this sender",
            Refusal::Full => "mempool full: fee too low",
        }
    }

    /// The constant's name in Python.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Rule(r) => r.name(),
            Refusal::AlreadyQueued => "ALREADY_QUEUED",
            Refusal::FeeTooLow => "FEE_TOO_LOW",
            Refusal::BadSignature => "BAD_SIGNATURE",
            Refusal::SenderLimit => "SENDER_LIMIT",
            Refusal::Full => "MEMPOOL_FULL",
        }
    }
}

/// The limits of a queue.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Transactions in all (the count and byte limits, the smaller).
    pub capacity: usize,
    /// Transactions of one sender.
    pub per_sender: usize,
    /// The lowest fee admitted (above `u64::MAX`: none is).
    pub min_fee: u128,
}

struct Entry<T> {
    item: T,
    fee: u64,
    /// Arrival order: lower is earlier.
    seq: u64,
}

/// A sender's account after its chain, and the account it was stepped from.
#[derive(Clone, Copy)]
struct Pending {
    base: Account,
    after: Account,
}

/// The eviction order of chain ends: lowest fee first, then latest arrival.
type TailKey = (u64, Reverse<u64>);

struct Chain<T> {
    /// The sender's account id.
    account: u64,
    /// Consecutive nonces.
    entries: VecDeque<Entry<T>>,
    /// How many of them are delegations.
    delegations: usize,
    pending: Option<Pending>,
}

fn is_delegation(raw: &[u8; TX_SIZE]) -> bool {
    Tx(raw).kind() == DELEGATION
}

/// What a transaction takes from its sender's balance.
fn debit(raw: &[u8; TX_SIZE]) -> u128 {
    let tx = Tx(raw);
    u128::from(tx.amount()) + u128::from(tx.fee())
}

impl<T: Item> Chain<T> {
    fn tail(&self) -> Option<TailKey> {
        self.entries.back().map(|e| (e.fee, Reverse(e.seq)))
    }

    fn first_nonce(&self) -> Option<u64> {
        self.entries.front().map(|e| Tx(e.item.raw()).nonce())
    }

    /// The nonce that continues the chain (None past `u64::MAX`).
    fn next_nonce(&self) -> Option<u64> {
        self.entries
            .back()
            .and_then(|e| Tx(e.item.raw()).nonce().checked_add(1))
    }

    fn entry(&self, nonce: u64) -> Option<&Entry<T>> {
        let at = nonce.checked_sub(self.first_nonce()?)?;
        self.entries.get(usize::try_from(at).ok()?)
    }

    fn raws(&self, out: &mut Vec<u8>) {
        for e in &self.entries {
            out.extend_from_slice(e.item.raw());
        }
    }

    /// The sender's account after the chain, when cached for `base`.
    fn after(&self, base: Account) -> Option<Account> {
        self.pending.filter(|p| p.base == base).map(|p| p.after)
    }

    /// After a block moved the sender's account to `base`, when the cache
    /// answers without stepping the chain: how many of its first
    /// transactions have used nonces, and the account after the others.
    ///
    /// That is when the cached step accepted the whole chain (so its debits
    /// are known: the cached balance before less the one after) and `base`
    /// covers the debits of the rest: each of them then passes, as the
    /// balance before each covers its own and the later ones' (the other
    /// rules do not depend on the account, and accounts are never removed),
    /// and the account after them is `base` less their debits. Else None:
    /// step the chain.
    fn advanced(&self, base: Account) -> Option<(usize, Account)> {
        let cached = self.pending?;
        let first = self.first_nonce()?;
        let len = self.entries.len();
        let end = first.checked_add(u64::try_from(len).ok()?)?;
        if cached.base.nonce != first || cached.after.nonce != end {
            return None;
        }
        let used = usize::try_from(base.nonce.checked_sub(first)?)
            .ok()
            .filter(|&k| k <= len)?;
        let (mut spent, mut delegations) = (0u128, 0usize);
        for e in self.entries.iter().take(used) {
            spent += debit(e.item.raw());
            delegations += usize::from(is_delegation(e.item.raw()));
        }
        let rest = u128::from(cached.base.balance)
            .checked_sub(u128::from(cached.after.balance))?
            .checked_sub(spent)?;
        let balance = u64::try_from(u128::from(base.balance).checked_sub(rest)?).ok()?;
        let delegate = if self.delegations > delegations {
            cached.after.delegate // the chain's last delegation is among the rest
        } else {
            base.delegate
        };
        let after = Account {
            balance,
            nonce: end,
            delegate,
        };
        Some((used, after))
    }
}

/// Move a chain's entry in the eviction order from `old` to `new`.
fn retail(
    tails: &mut Option<BTreeMap<TailKey, Key>>,
    sender: Key,
    old: Option<TailKey>,
    new: Option<TailKey>,
) {
    if let Some(tails) = tails {
        if let Some(old) = old {
            tails.remove(&old);
        }
        if let Some(new) = new {
            tails.insert(new, sender);
        }
    }
}

/// What [`Queue::check`] found, for [`Queue::admit`].
pub struct Checked {
    /// The reason of each transaction refused so far.
    pub reasons: Vec<Option<Refusal>>,
    /// The transactions that passed the rules, in batch order: those whose
    /// signature is to be known before `admit`.
    pub passed: Vec<usize>,
    /// The batch's senders' accounts after their chains and their accepted
    /// transactions.
    layer: Layer,
    /// Each batch sender with an account: its key, id and account then.
    senders: Vec<(Key, u64, Account)>,
}

/// The queue: transactions by id, chains by sender, the eviction order.
pub struct Queue<T> {
    limits: Limits,
    chains: HashMap<Key, Chain<T>>,
    /// Where each transaction is: its sender and nonce.
    ids: HashMap<TxId, (Key, u64)>,
    /// The chain ends in eviction order, kept only from the first eviction
    /// until a recheck leaves the queue half empty: an admission with room
    /// pays nothing for it.
    tails: Option<BTreeMap<TailKey, Key>>,
    seq: u64,
    evicted: u64,
}

impl<T: Item> Queue<T> {
    pub fn new(limits: Limits) -> Self {
        Queue {
            limits,
            chains: HashMap::new(),
            ids: HashMap::new(),
            tails: None,
            seq: 0,
            evicted: 0,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Transactions evicted for better-paying ones so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    pub fn contains(&self, id: &TxId) -> bool {
        self.ids.contains_key(id)
    }

    pub fn get(&self, id: &TxId) -> Option<&T> {
        let (sender, nonce) = self.ids.get(id)?;
        Some(&self.chains.get(sender)?.entry(*nonce)?.item)
    }

    /// The queued transactions of `sender`, in nonce order.
    pub fn pending(&self, sender: &Key) -> Vec<&T> {
        self.chains
            .get(sender)
            .map_or_else(Vec::new, |c| c.entries.iter().map(|e| &e.item).collect())
    }

    /// The indices of the batch's transactions that are not queued, not
    /// repeated in the batch and pay the minimum fee; the others get their
    /// reason in `reasons`.
    fn fresh(&self, batch: &[T], mut reasons: Option<&mut [Option<Refusal>]>) -> Vec<usize> {
        let mut seen: HashSet<&TxId> = HashSet::with_capacity(batch.len());
        let mut fresh = Vec::with_capacity(batch.len());
        for (i, item) in batch.iter().enumerate() {
            let id = item.id();
            let refusal = if self.ids.contains_key(id) || seen.contains(id) {
                Some(Refusal::AlreadyQueued)
            } else if u128::from(Tx(item.raw()).fee()) < self.limits.min_fee {
                Some(Refusal::FeeTooLow)
            } else {
                seen.insert(id);
                fresh.push(i);
                None
            };
            if let Some(r) = reasons.as_deref_mut().and_then(|r| r.get_mut(i)) {
                *r = refusal;
            }
        }
        fresh
    }

    /// `fresh` without the reasons: what `to_verify` starts from.
    pub fn fresh_indices(&self, batch: &[T]) -> Vec<usize> {
        self.fresh(batch, None)
    }

    /// The first step of an admission: duplicates, the minimum fee, then the
    /// rules, each transaction against its sender's account after the
    /// sender's chain and its earlier transactions in the batch. Nothing
    /// changes.
    pub fn check<R: Rules>(&self, rules: &R, batch: &[T]) -> Checked {
        let mut reasons = vec![None; batch.len()];
        let fresh = self.fresh(batch, Some(&mut reasons));
        let mut layer = Layer::default();
        let mut raw = Vec::with_capacity(fresh.len() * TX_SIZE);
        let mut senders = Vec::new();
        let mut seen = HashSet::new();
        for &i in &fresh {
            let sender = Tx(batch[i].raw()).sender();
            if !seen.insert(sender) {
                continue;
            }
            let Some((id, base)) = rules
                .id_of(&sender)
                .and_then(|id| Some((id, rules.account(id)?)))
            else {
                continue;
            };
            senders.push((sender, id, base));
            if let Some(chain) = self.chains.get(&sender) {
                // When a block changed the account since, the chain is stepped again
                // unless the cache still answers (`Chain::advanced`).
                let after = chain.after(base).or_else(|| Some(chain.advanced(base)?.1));
                match after {
                    Some(after) => layer.insert(id, after),
                    None => chain.raws(&mut raw),
                }
            }
        }
        let first = raw.len() / TX_SIZE;
        for &i in &fresh {
            raw.extend_from_slice(batch[i].raw());
        }
        let stepped = rules.step(&mut layer, &raw);
        let mut passed = Vec::with_capacity(fresh.len());
        for (&i, reason) in fresh.iter().zip(stepped.iter().skip(first)) {
            match reason {
                None => passed.push(i),
                Some(r) => reasons[i] = Some(Refusal::Rule(*r)),
            }
        }
        Checked {
            reasons,
            passed,
            layer,
            senders,
        }
    }

    /// The second step: queue the transactions of `checked.passed` within
    /// the limits, in batch order, but those whose signature is `bad` (one
    /// flag each). The reason of each transaction of the batch, None when
    /// queued.
    pub fn admit<R: Rules>(
        &mut self,
        rules: &R,
        batch: Vec<T>,
        checked: Checked,
        bad: &[bool],
    ) -> Vec<Option<Refusal>> {
        let Checked {
            mut reasons,
            passed,
            layer,
            senders,
        } = checked;
        let mut items: Vec<Option<T>> = batch.into_iter().map(Some).collect();
        // Senders whose account after their chain is no longer the layer's: a
        // transaction the rules accepted was refused after all, or evicted.
        let mut redo: HashSet<Key> = HashSet::new();
        for (k, &i) in passed.iter().enumerate() {
            let Some(item) = items.get_mut(i).and_then(Option::take) else {
                continue;
            };
            let sender = Tx(item.raw()).sender();
            let reason = if bad.get(k).copied().unwrap_or(false) {
                Some(Refusal::BadSignature)
            } else {
                self.admit_one(rules, item, &mut redo)
            };
            if reason.is_some() {
                redo.insert(sender);
            }
            if let Some(r) = reasons.get_mut(i) {
                *r = reason;
            }
        }
        for (sender, id, base) in senders {
            if let Some(chain) = self.chains.get_mut(&sender) {
                let after = layer.account(id).unwrap_or(base);
                chain.pending = Some(Pending { base, after });
            }
        }
        for sender in redo {
            if let Some(chain) = self.chains.get_mut(&sender) {
                chain.pending = None;
            }
        }
        reasons
    }

    /// Queue one transaction that passed the rules, within the limits. The
    /// sender of an evicted transaction goes into `redo`.
    fn admit_one<R: Rules>(
        &mut self,
        rules: &R,
        item: T,
        redo: &mut HashSet<Key>,
    ) -> Option<Refusal> {
        let tx = Tx(item.raw());
        let (sender, nonce, fee) = (tx.sender(), tx.nonce(), tx.fee());
        let (next, account, length) = match self.chains.get(&sender) {
            Some(chain) => (chain.next_nonce(), chain.account, chain.entries.len()),
            None => {
                let Some(id) = rules.id_of(&sender) else {
                    return Some(Refusal::Rule(Reason::UnknownSender));
                };
                (rules.account(id).map(|a| a.nonce), id, 0)
            }
        };
        if next != Some(nonce) {
            // An earlier transaction of this sender in the batch was not queued.
            return Some(Refusal::Rule(Reason::NonceTooHigh));
        }
        if length >= self.limits.per_sender {
            return Some(Refusal::SenderLimit);
        }
        if self.ids.len() >= self.limits.capacity {
            match self.lowest_tail(&sender) {
                Some((victim, victim_fee)) if victim_fee < fee => {
                    self.pop_tail(&victim);
                    self.evicted += 1;
                    redo.insert(victim);
                }
                _ => return Some(Refusal::Full),
            }
        }
        self.push(sender, account, nonce, fee, item);
        None
    }

    fn push(&mut self, sender: Key, account: u64, nonce: u64, fee: u64, item: T) {
        self.ids.insert(*item.id(), (sender, nonce));
        let seq = self.seq;
        self.seq += 1;
        let chain = self.chains.entry(sender).or_insert_with(|| Chain {
            account,
            entries: VecDeque::new(),
            delegations: 0,
            pending: None,
        });
        let old = chain.tail();
        chain.delegations += usize::from(is_delegation(item.raw()));
        chain.entries.push_back(Entry { item, fee, seq });
        retail(&mut self.tails, sender, old, chain.tail());
    }

    /// The cheapest chain end not of `exclude`: its sender and fee.
    fn lowest_tail(&mut self, exclude: &Key) -> Option<(Key, u64)> {
        let chains = &self.chains;
        let tails = self.tails.get_or_insert_with(|| {
            chains
                .iter()
                .filter_map(|(sender, c)| Some((c.tail()?, *sender)))
                .collect()
        });
        tails
            .iter()
            .find(|(_, sender)| *sender != exclude)
            .map(|((fee, _), sender)| (*sender, *fee))
    }

    fn pop_tail(&mut self, sender: &Key) {
        let Some(chain) = self.chains.get_mut(sender) else {
            return;
        };
        let old = chain.tail();
        if let Some(e) = chain.entries.pop_back() {
            chain.delegations -= usize::from(is_delegation(e.item.raw()));
            self.ids.remove(e.item.id());
        }
        retail(&mut self.tails, *sender, old, chain.tail());
        if chain.entries.is_empty() {
            self.chains.remove(sender);
        }
    }

    /// Transactions for a block, at most `limit`: fee order across senders
    /// (higher fee first, then earlier arrival), nonce order within each.
    pub fn select(&self, limit: usize) -> Vec<&T> {
        let chains: Vec<&Chain<T>> = self.chains.values().collect();
        let mut heads: BinaryHeap<(u64, Reverse<u64>, usize, usize)> = chains
            .iter()
            .enumerate()
            .filter_map(|(c, chain)| {
                let e = chain.entries.front()?;
                Some((e.fee, Reverse(e.seq), c, 0))
            })
            .collect();
        let mut out = Vec::with_capacity(limit.min(self.len()));
        while out.len() < limit {
            let Some((_, _, c, i)) = heads.pop() else {
                break;
            };
            let Some(chain) = chains.get(c) else { break };
            if let Some(e) = chain.entries.get(i) {
                out.push(&e.item);
            }
            if let Some(next) = chain.entries.get(i + 1) {
                heads.push((next.fee, Reverse(next.seq), c, i + 1));
            }
        }
        out
    }

    /// After a block: drop what the state no longer accepts from the chains
    /// of `senders` (all chains when None), each chain alone from its
    /// sender's account (no credit from another sender's counts); returns how
    /// many were dropped. Included transactions fail ("nonce too low"), and
    /// so does anything the block made invalid, with the rest of its chain.
    ///
    /// A chain whose cache shows it still valid past its used nonces (the
    /// common case: the block included its first transactions) loses those
    /// without being stepped, O(used); the others are stepped, O(chain).
    pub fn recheck<R: Rules>(&mut self, rules: &R, senders: Option<&[Key]>) -> usize {
        let keys: Vec<Key> = match senders {
            None => self.chains.keys().copied().collect(),
            Some(senders) => {
                let mut seen = HashSet::new();
                senders
                    .iter()
                    .filter(|s| self.chains.contains_key(*s) && seen.insert(**s))
                    .copied()
                    .collect()
            }
        };
        let mut dropped = 0;
        let mut stepped = Vec::new();
        let mut raw = Vec::new();
        for key in keys {
            let Some(chain) = self.chains.get_mut(&key) else {
                continue;
            };
            let base = rules.account(chain.account);
            let Some((used, after)) = base.and_then(|b| chain.advanced(b)) else {
                chain.raws(&mut raw);
                stepped.push(key);
                continue;
            };
            let old = chain.tail();
            for e in chain.entries.drain(..used) {
                chain.delegations -= usize::from(is_delegation(e.item.raw()));
                self.ids.remove(e.item.id());
                dropped += 1;
            }
            chain.pending = base.map(|base| Pending { base, after });
            retail(&mut self.tails, key, old, chain.tail());
            if chain.entries.is_empty() {
                self.chains.remove(&key);
            }
        }
        if !raw.is_empty() {
            dropped += self.step_chains(rules, &stepped, &raw);
        }
        if dropped > 0 && self.ids.len() < self.limits.capacity / 2 {
            self.tails = None; // room again: admissions need no eviction order
        }
        dropped
    }

    /// Step the chains of `keys` (`raw`: their transactions, chain after
    /// chain) each from its sender's account, and drop what fails; returns
    /// how many were dropped.
    fn step_chains<R: Rules>(&mut self, rules: &R, keys: &[Key], raw: &[u8]) -> usize {
        let mut layer = Layer::default();
        let reasons = rules.step(&mut layer, raw);
        let mut verdicts = reasons.iter();
        let mut dropped = 0;
        for key in keys {
            let Some(chain) = self.chains.get_mut(key) else {
                continue;
            };
            let old = chain.tail();
            let entries = std::mem::take(&mut chain.entries);
            for e in entries {
                if verdicts.next().copied().flatten().is_none() {
                    chain.entries.push_back(e);
                } else {
                    chain.delegations -= usize::from(is_delegation(e.item.raw()));
                    self.ids.remove(e.item.id());
                    dropped += 1;
                }
            }
            retail(&mut self.tails, *key, old, chain.tail());
            chain.pending = rules.account(chain.account).map(|base| Pending {
                base,
                after: layer.account(chain.account).unwrap_or(base),
            });
            if chain.entries.is_empty() {
                self.chains.remove(key);
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::KEY_SIZE;

    /// A transaction for the tests: its encoding and a made-up id.
    struct Raw {
        raw: [u8; TX_SIZE],
        id: TxId,
    }

    impl Item for Raw {
        fn raw(&self) -> &[u8; TX_SIZE] {
            &self.raw
        }
        fn id(&self) -> &TxId {
            &self.id
        }
    }

    fn key(i: u8) -> Key {
        // Known accounts need no valid key; recipients here always have one.
        [i; KEY_SIZE]
    }

    fn state(n: u8, balance: u64) -> Accounts {
        let mut entries = Vec::new();
        for i in 0..n {
            entries.extend_from_slice(&key(i));
            entries.extend_from_slice(&balance.to_be_bytes());
        }
        Accounts::from_genesis(&entries).unwrap()
    }

    /// A transfer from account `from` to account 0, told apart by `tag`.
    fn pay(from: u8, amount: u64, fee: u64, nonce: u64, tag: u8) -> Raw {
        transfer(from, 0, amount, fee, nonce, tag)
    }

    fn transfer(from: u8, to: u8, amount: u64, fee: u64, nonce: u64, tag: u8) -> Raw {
        let mut raw = [0u8; TX_SIZE];
        raw[1..33].copy_from_slice(&key(from));
        raw[33..65].copy_from_slice(&key(to));
        raw[65..73].copy_from_slice(&amount.to_be_bytes());
        raw[73..81].copy_from_slice(&fee.to_be_bytes());
        raw[81..89].copy_from_slice(&nonce.to_be_bytes());
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&nonce.to_be_bytes());
        id[8] = from;
        id[9] = tag;
        id[10..18].copy_from_slice(&fee.to_be_bytes());
        Raw { raw, id }
    }

    fn limits(capacity: usize, per_sender: usize) -> Limits {
        Limits {
            capacity,
            per_sender,
            min_fee: 0,
        }
    }

    fn add(q: &mut Queue<Raw>, rules: &Accounts, batch: Vec<Raw>) -> Vec<Option<&'static str>> {
        let checked = q.check(rules, &batch);
        let bad = vec![false; checked.passed.len()];
        q.admit(rules, batch, checked, &bad)
            .into_iter()
            .map(|r| r.map(Refusal::text))
            .collect()
    }

    fn fees(q: &Queue<Raw>, limit: usize) -> Vec<(u8, u64)> {
        q.select(limit)
            .iter()
            .map(|t| (t.raw[1], Tx(&t.raw).fee()))
            .collect()
    }

    #[test]
    fn chains_limits_and_eviction() {
        let s = state(5, 100);
        let mut q = Queue::new(limits(3, 2));
        let r = add(
            &mut q,
            &s,
            vec![
                pay(1, 10, 5, 0, 0),
                pay(1, 10, 6, 1, 0),
                pay(1, 10, 7, 2, 0),
                pay(2, 10, 1, 1, 0),
                pay(2, 100, 1, 0, 0),
                pay(1, 10, 5, 0, 0),
            ],
        );
        assert_eq!(
            r,
            vec![
                None,
                None,
                Some("too many queued transactions from this sender"),
                Some("nonce too high"),
                Some("insufficient balance"),
                Some("already in the mempool"),
            ]
        );
        assert_eq!(add(&mut q, &s, vec![pay(3, 1, 1, 0, 0)]), vec![None]);
        // Full: the cheapest end (3's fee 1) goes for a fee of 2, not for 1.
        assert_eq!(
            add(&mut q, &s, vec![pay(4, 1, 1, 0, 0)]),
            vec![Some("mempool full: fee too low")]
        );
        assert_eq!(add(&mut q, &s, vec![pay(4, 1, 2, 0, 0)]), vec![None]);
        assert_eq!(q.evicted(), 1);
        assert_eq!(fees(&q, 10), vec![(1, 5), (1, 6), (4, 2)]);
        // Sender 1's own end cannot make room for it; 4's can.
        assert_eq!(
            add(&mut q, &s, vec![pay(1, 1, 9, 2, 1)]),
            vec![Some("too many queued transactions from this sender")]
        );
        assert_eq!(add(&mut q, &s, vec![pay(2, 1, 3, 0, 0)]), vec![None]);
        assert_eq!(fees(&q, 10), vec![(1, 5), (1, 6), (2, 3)]);
        assert_eq!(fees(&q, 2), vec![(1, 5), (1, 6)]);
    }

    #[test]
    fn a_block_changes_the_cached_account_and_recheck_drops_what_it_spent() {
        let mut s = state(3, 100);
        let mut q = Queue::new(limits(10, 10));
        let chain = vec![pay(1, 40, 1, 0, 0), pay(1, 40, 1, 1, 0)];
        assert_eq!(add(&mut q, &s, chain), vec![None, None]);
        assert_eq!(
            add(&mut q, &s, vec![pay(1, 40, 1, 2, 0)]),
            vec![Some("insufficient balance")]
        );
        // A block credits account 1: the cache is stale, the chain is stepped again.
        let credit = transfer(2, 1, 50, 0, 0, 9).raw;
        s.commit(&s.prepare(&credit, Some(0), &[]).unwrap())
            .unwrap();
        assert_eq!(add(&mut q, &s, vec![pay(1, 40, 1, 2, 0)]), vec![None]);
        assert_eq!(q.recheck(&s, Some(&[key(1), key(1)])), 0);
        // A block spends account 1's funds another way: its chain is dropped.
        let spend = pay(1, 140, 0, 0, 7).raw;
        s.commit(&s.prepare(&spend, Some(0), &[]).unwrap()).unwrap();
        assert_eq!(q.recheck(&s, None), 3);
        assert_eq!(q.len(), 0);
        assert!(q.pending(&key(1)).is_empty());
    }

    /// A small deterministic generator (xorshift64*).
    struct Draw(u64);

    impl Draw {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
        }
    }

    fn contents(q: &Queue<Raw>, senders: u8) -> Vec<Vec<TxId>> {
        (0..senders)
            .map(|s| q.pending(&key(s)).iter().map(|t| t.id).collect())
            .collect()
    }

    fn delegate(from: u8, to: u8, fee: u64, nonce: u64) -> Raw {
        let mut tx = transfer(from, to, 0, fee, nonce, 5);
        tx.raw[0] = DELEGATION;
        tx.id[11] = 1;
        tx
    }

    #[test]
    fn a_recheck_from_the_cache_drops_and_keeps_what_stepping_the_chains_does() {
        const SENDERS: u8 = 6;
        let mut draw = Draw(0x9e37_79b9_7f4a_7c15);
        let (mut fast, mut slow) = (0, 0);
        for round in 0..200 {
            let mut s = state(SENDERS, 100);
            let (mut cached, mut stepped) = (Queue::new(limits(64, 8)), Queue::new(limits(64, 8)));
            for step in 0..12u8 {
                let mut batch = Vec::new();
                for _ in 0..draw.below(6) {
                    let from = draw.below(u64::from(SENDERS)) as u8;
                    let id = s.id_of(&key(from)).unwrap();
                    let nonce = s.get(id).unwrap().nonce + cached.pending(&key(from)).len() as u64;
                    let fee = draw.below(4);
                    let to = draw.below(u64::from(SENDERS)) as u8;
                    batch.push(if draw.below(5) == 0 {
                        delegate(from, to, fee, nonce)
                    } else {
                        transfer(from, to, 1 + draw.below(40), fee, nonce, step)
                    });
                }
                let copy = batch
                    .iter()
                    .map(|t| Raw {
                        raw: t.raw,
                        id: t.id,
                    })
                    .collect();
                assert_eq!(add(&mut cached, &s, batch), add(&mut stepped, &s, copy));
                // A block: the queue's best, what of it applies, then a transfer of
                // another sender's next nonce (a spend the queue did not expect, or a
                // credit to a queued sender).
                let mut block: Vec<u8> = Vec::new();
                for t in cached.select(draw.below(8) as usize) {
                    if s.check(&block, &t.raw) == vec![None] {
                        block.extend_from_slice(&t.raw);
                    }
                }
                let from = draw.below(u64::from(SENDERS)) as u8;
                let id = s.id_of(&key(from)).unwrap();
                let queued = block
                    .chunks_exact(TX_SIZE)
                    .filter(|c| c[1..33] == key(from))
                    .count() as u64;
                let extra = transfer(
                    from,
                    draw.below(u64::from(SENDERS)) as u8,
                    1 + draw.below(60),
                    0,
                    s.get(id).unwrap().nonce + queued,
                    99,
                );
                if s.check(&block, &extra.raw) == vec![None] && draw.below(2) == 0 {
                    block.extend_from_slice(&extra.raw);
                }
                s.commit(&s.prepare(&block, Some(0), &[]).unwrap()).unwrap();
                // Where the cache answers, it answers as stepping the chain does.
                for chain in cached.chains.values() {
                    let base = s.get(chain.account).unwrap();
                    let mut raw = Vec::new();
                    chain.raws(&mut raw);
                    let mut layer = Layer::default();
                    let reasons = s.step_layer(&mut layer, &raw);
                    let Some((used, after)) = chain.advanced(base) else {
                        slow += 1;
                        continue;
                    };
                    fast += usize::from(used > 0);
                    assert!(reasons[..used]
                        .iter()
                        .all(|r| *r == Some(Reason::NonceTooLow)));
                    assert!(reasons[used..].iter().all(Option::is_none));
                    assert_eq!(layer.account(chain.account).unwrap_or(base), after);
                }
                for chain in stepped.chains.values_mut() {
                    chain.pending = None; // every chain stepped again
                }
                let senders: Vec<Key> = block.chunks_exact(TX_SIZE).map(sender_of).collect();
                let which = if draw.below(3) == 0 {
                    None
                } else {
                    Some(&senders[..])
                };
                assert_eq!(
                    cached.recheck(&s, which),
                    stepped.recheck(&s, which),
                    "round {round} step {step}"
                );
                assert_eq!(contents(&cached, SENDERS), contents(&stepped, SENDERS));
                for (sender, chain) in &cached.chains {
                    assert_eq!(chain.delegations, stepped.chains[sender].delegations);
                }
            }
        }
        assert!(
            fast > 1000 && slow > 100,
            "both ways are covered: {fast}, {slow}"
        );
    }

    fn sender_of(c: &[u8]) -> Key {
        c[1..33].try_into().unwrap()
    }
}

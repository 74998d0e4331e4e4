//! The account state and the transaction rules (docs/protocol.md §13), in
//! plain Rust: no Python here.
//!
//! Accounts are dense ids from 0, each with a public key, a balance, a nonce
//! (the number of transactions it has sent) and a delegate. A batch of
//! transactions is checked or applied on an [`Overlay`]: a scratch layer over
//! the state that records what the transactions so far have changed, so a
//! second transaction spending the same funds is refused. Applying a block
//! produces a [`Delta`] (every changed and created account, old and new); the
//! state changes only when the delta is committed.

use std::cmp::Ordering;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

use curve25519_dalek::edwards::CompressedEdwardsY;
use rayon::prelude::*;

pub const KEY_SIZE: usize = 32;
/// One encoded transaction (docs/protocol.md §6).
pub const TX_SIZE: usize = 153;
/// One genesis account: `pk 32 || balance u64be`.
pub const GENESIS_ENTRY: usize = KEY_SIZE + 8;
/// One stored account: `pk 32 || balance u64be || nonce u64be || delegate u64be`.
pub const RECORD_SIZE: usize = KEY_SIZE + 24;
/// One undo entry: `id u64be || balance u64be || nonce u64be || delegate u64be`.
pub const UNDO_ENTRY: usize = 32;
/// The delegate of an account that has not delegated.
pub const NO_DELEGATE: u64 = u64::MAX;
/// The total supply stays below this (docs/protocol.md §1).
pub const SUPPLY_LIMIT: u64 = 1 << 63;

const TRANSFER: u8 = 0;
/// The kind of a delegation (docs/protocol.md §13).
pub const DELEGATION: u8 = 1;
const SENDER: usize = 1;
const RECIPIENT: usize = SENDER + KEY_SIZE;
const AMOUNT: usize = RECIPIENT + KEY_SIZE;
const FEE: usize = AMOUNT + 8;
const NONCE: usize = FEE + 8;

/// Below this many keys to check, the work stays on the calling thread.
const PARALLEL_MIN: usize = 512;

pub type Key = [u8; KEY_SIZE];

/// The big-endian u64 at `at`, 0 when out of range (callers pass fixed-size
/// inputs, so it never is).
pub fn be_u64(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..)
        .and_then(|s| s.first_chunk::<8>())
        .map_or(0, |b| u64::from_be_bytes(*b))
}

/// The 32 bytes at `at` (zeros when out of range; never, for fixed-size inputs).
pub fn key_at(bytes: &[u8], at: usize) -> Key {
    bytes
        .get(at..)
        .and_then(|s| s.first_chunk::<KEY_SIZE>())
        .copied()
        .unwrap_or([0; KEY_SIZE])
}

/// Whether `key` may own an account (PROTOCOL §2): a canonical encoding of a
/// curve point that is not of small order.
///
/// Canonical means that re-encoding the decoded point gives `key` back. That
/// fails in two ways only: `y >= p` (checked on the bytes), or `x = 0` with
/// the sign bit set; `x = 0` means `y = ±1`, two points of small order,
/// which are refused anyway. So no re-encoding (a field inversion, half the
/// cost) is needed.
pub fn is_valid_account_key(key: &Key) -> bool {
    y_is_canonical(key)
        && CompressedEdwardsY(*key)
            .decompress()
            .is_some_and(|point| !point.is_small_order())
}

/// Whether the 255-bit `y` of an encoding (the sign bit left out) is below
/// `p = 2^255 - 19`: `y >= p` only for low byte >= 0xed, 30 bytes 0xff and
/// a top byte 0x7f (ignoring the sign bit).
fn y_is_canonical(key: &Key) -> bool {
    let (low, rest) = (key[0], &key[1..31]);
    !(key[31] & 0x7f == 0x7f && rest.iter().all(|&b| b == 0xff) && low >= 0xed)
}

/// `is_valid_account_key` of every key, in parallel for many.
pub fn valid_keys(keys: &[Key]) -> Vec<bool> {
    if keys.len() < PARALLEL_MIN {
        keys.iter().map(is_valid_account_key).collect()
    } else {
        keys.par_iter().map(is_valid_account_key).collect()
    }
}

/// One account's mutable part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Account {
    pub balance: u64,
    /// Transactions sent (and applied) so far: the nonce of the next one.
    pub nonce: u64,
    /// The account this one delegates to, or `NO_DELEGATE`. An account
    /// created by a transfer starts with its registrar (the sender); a
    /// genesis account with none; a delegation to oneself clears it.
    pub delegate: u64,
}

impl Account {
    const fn new(balance: u64) -> Self {
        Account {
            balance,
            nonce: 0,
            delegate: NO_DELEGATE,
        }
    }
}

/// `pk || balance || nonce || delegate`, big-endian.
pub fn encode_record(key: &Key, a: &Account) -> [u8; RECORD_SIZE] {
    let mut out = [0u8; RECORD_SIZE];
    let (k, rest) = out.split_at_mut(KEY_SIZE);
    k.copy_from_slice(key);
    for (chunk, v) in rest
        .chunks_exact_mut(8)
        .zip([a.balance, a.nonce, a.delegate])
    {
        chunk.copy_from_slice(&v.to_be_bytes());
    }
    out
}

/// Why a transaction is refused. The texts are stable: callers and tests
/// compare them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    UnknownKind,
    DelegationAmount,
    UnknownSender,
    NonceTooLow,
    NonceTooHigh,
    ZeroAmount,
    SelfTransfer,
    UnknownDelegate,
    InsufficientBalance,
    BadRecipientKey,
    Overflow,
}

impl Reason {
    pub const ALL: [Reason; 11] = [
        Reason::UnknownKind,
        Reason::DelegationAmount,
        Reason::UnknownSender,
        Reason::NonceTooLow,
        Reason::NonceTooHigh,
        Reason::ZeroAmount,
        Reason::SelfTransfer,
        Reason::UnknownDelegate,
        Reason::InsufficientBalance,
        Reason::BadRecipientKey,
        Reason::Overflow,
    ];

    pub fn text(self) -> &'static str {
        match self {
            Reason::UnknownKind => "unknown transaction kind",
            Reason::DelegationAmount => "delegation amount must be 0",
            Reason::UnknownSender => "unknown sender",
            Reason::NonceTooLow => "nonce too low",
            Reason::NonceTooHigh => "nonce too high",
            Reason::ZeroAmount => "amount must be at least 1",
            Reason::SelfTransfer => "recipient is the sender",
            Reason::UnknownDelegate => "delegate has no account",
            Reason::InsufficientBalance => "insufficient balance",
            Reason::BadRecipientKey => "recipient key is small-order or non-canonical",
            Reason::Overflow => "balance overflow",
        }
    }

    /// The constant's name in Python (`REASON_<NAME>`).
    pub fn name(self) -> &'static str {
        match self {
            Reason::UnknownKind => "UNKNOWN_KIND",
            Reason::DelegationAmount => "DELEGATION_AMOUNT",
            Reason::UnknownSender => "UNKNOWN_SENDER",
            Reason::NonceTooLow => "NONCE_TOO_LOW",
            Reason::NonceTooHigh => "NONCE_TOO_HIGH",
            Reason::ZeroAmount => "ZERO_AMOUNT",
            Reason::SelfTransfer => "SELF_TRANSFER",
            Reason::UnknownDelegate => "UNKNOWN_DELEGATE",
            Reason::InsufficientBalance => "INSUFFICIENT_BALANCE",
            Reason::BadRecipientKey => "BAD_RECIPIENT_KEY",
            Reason::Overflow => "OVERFLOW",
        }
    }
}

/// Why a block cannot be applied.
#[derive(Debug, PartialEq, Eq)]
pub enum BlockError {
    /// Transaction `index` breaks a rule.
    Transaction { index: usize, reason: Reason },
    /// The producer, who gets the fees, has no account.
    UnknownProducer(u64),
    /// A block with transactions must name its producer.
    NoProducer,
    /// The fees overflow the producer's balance (impossible below the supply limit).
    FeeOverflow,
    /// A reward credit names an account that did not exist before the block.
    UnknownCredit(u64),
    /// The minted units would take the total supply to 2^63 or beyond.
    SupplyLimit { total: u64, minted: u64 },
}

impl std::fmt::Display for BlockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlockError::Transaction { index, reason } => {
                write!(f, "transaction {index}: {}", reason.text())
            }
            BlockError::UnknownProducer(p) => write!(f, "producer {p} has no account"),
            BlockError::NoProducer => write!(f, "transactions without a producer"),
            BlockError::FeeOverflow => write!(f, "the fees overflow the producer's balance"),
            BlockError::UnknownCredit(id) => write!(f, "reward for account {id}, which has none"),
            BlockError::SupplyLimit { total, minted } => write!(
                f,
                "minting {minted} on a supply of {total} would reach the limit of 2^63"
            ),
        }
    }
}

/// A read-only view of one encoded transaction.
#[derive(Clone, Copy)]
pub struct Tx<'a>(pub &'a [u8; TX_SIZE]);

impl Tx<'_> {
    pub fn kind(&self) -> u8 {
        self.0[0]
    }
    pub fn sender(&self) -> Key {
        key_at(self.0, SENDER)
    }
    pub fn recipient(&self) -> Key {
        key_at(self.0, RECIPIENT)
    }
    pub fn amount(&self) -> u64 {
        be_u64(self.0, AMOUNT)
    }
    pub fn fee(&self) -> u64 {
        be_u64(self.0, FEE)
    }
    pub fn nonce(&self) -> u64 {
        be_u64(self.0, NONCE)
    }
}

/// The transactions of a buffer of concatenated 153-byte encodings.
pub fn transactions(buf: &[u8]) -> impl Iterator<Item = Tx<'_>> {
    buf.chunks_exact(TX_SIZE)
        .filter_map(|c| c.first_chunk::<TX_SIZE>())
        .map(Tx)
}

/// A pre-existing account that a block changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changed {
    pub id: u64,
    pub key: Key,
    pub old: Account,
    pub new: Account,
}

/// What a block changes: every changed account (old and new values) and the
/// accounts it creates, against the state of version `version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delta {
    pub version: u64,
    /// Accounts before the block: the id of the first created one.
    pub accounts_before: u64,
    /// Pre-existing accounts whose record changed, ascending ids.
    pub changed: Vec<Changed>,
    /// Created accounts, ids `accounts_before ..`.
    pub new_keys: Vec<Key>,
    pub new_accounts: Vec<Account>,
    pub tx_count: usize,
    pub fees: u64,
    pub producer: Option<u64>,
    /// Units created by the block's reward credits (docs/protocol.md §16).
    pub minted: u64,
}

impl Delta {
    /// `accounts_before u64be || (id || balance || nonce || delegate) * changed`:
    /// what undoes the block.
    pub fn undo(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + UNDO_ENTRY * self.changed.len());
        out.extend_from_slice(&self.accounts_before.to_be_bytes());
        for c in &self.changed {
            for v in [c.id, c.old.balance, c.old.nonce, c.old.delegate] {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        out
    }

    /// (id, record) of every changed and created account, ascending ids.
    pub fn records(&self) -> impl Iterator<Item = (u64, [u8; RECORD_SIZE])> + '_ {
        let changed = self
            .changed
            .iter()
            .map(|c| (c.id, encode_record(&c.key, &c.new)));
        let created = self
            .new_keys
            .iter()
            .zip(&self.new_accounts)
            .zip(self.accounts_before..)
            .map(|((k, a), id)| (id, encode_record(k, a)));
        changed.chain(created)
    }
}

/// One entry of an undo record.
pub struct UndoEntry {
    pub id: u64,
    pub old: Account,
}

/// An undo record read back: the account count before the block, and the
/// old value of each changed account.
pub fn parse_undo(undo: &[u8]) -> Result<(u64, Vec<UndoEntry>), String> {
    let Some((head, rest)) = undo.split_first_chunk::<8>() else {
        return Err(format!(
            "undo record: {} bytes, need at least 8",
            undo.len()
        ));
    };
    if rest.len() % UNDO_ENTRY != 0 {
        return Err(format!(
            "undo record: {} bytes after the count, not a multiple of {UNDO_ENTRY}",
            rest.len()
        ));
    }
    let before = u64::from_be_bytes(*head);
    let entries = rest
        .chunks_exact(UNDO_ENTRY)
        .map(|e| UndoEntry {
            id: be_u64(e, 0),
            old: Account {
                balance: be_u64(e, 8),
                nonce: be_u64(e, 16),
                delegate: be_u64(e, 24),
            },
        })
        .collect();
    Ok((before, entries))
}

/// Stored records read in parts (a ledger streams them from its store), then
/// built into the state at once.
#[derive(Default)]
pub struct RecordParts {
    keys: Vec<Key>,
    accounts: Vec<Account>,
}

impl RecordParts {
    /// Room for `n` more records.
    pub fn reserve(&mut self, n: usize) {
        self.keys.reserve_exact(n);
        self.accounts.reserve_exact(n);
    }

    /// The records of `records` (whole 56-byte records), the next ids.
    pub fn add(&mut self, records: &[u8]) -> Result<(), String> {
        if !records.len().is_multiple_of(RECORD_SIZE) {
            return Err(format!(
                "records: {} bytes is not a whole number of {RECORD_SIZE}-byte records",
                records.len()
            ));
        }
        self.reserve(records.len() / RECORD_SIZE);
        for r in records.chunks_exact(RECORD_SIZE) {
            self.keys.push(key_at(r, 0));
            self.accounts.push(Account {
                balance: be_u64(r, KEY_SIZE),
                nonce: be_u64(r, KEY_SIZE + 8),
                delegate: be_u64(r, KEY_SIZE + 16),
            });
        }
        Ok(())
    }

    /// The state of every record added, checked like a genesis.
    pub fn build(self) -> Result<Accounts, String> {
        Accounts::build(self.keys, self.accounts)
    }
}

/// The account state: keys, balances, nonces and delegates by id, and the
/// index from key to id.
#[derive(Default, Debug)]
pub struct Accounts {
    keys: Vec<Key>,
    accounts: Vec<Account>,
    index: HashMap<Key, u64>,
    total: u64,
    version: u64,
}

/// `id` as an index into a vector of `len`, if it is one.
fn slot(id: u64, len: usize) -> Option<usize> {
    usize::try_from(id).ok().filter(|&i| i < len)
}

impl Accounts {
    /// From genesis entries (`pk || balance u64be`, each 40 bytes).
    pub fn from_genesis(entries: &[u8]) -> Result<Self, String> {
        if !entries.len().is_multiple_of(GENESIS_ENTRY) {
            return Err(format!(
                "accounts: {} bytes is not a whole number of {GENESIS_ENTRY}-byte entries",
                entries.len()
            ));
        }
        let n = entries.len() / GENESIS_ENTRY;
        let mut keys = Vec::with_capacity(n);
        let mut accounts = Vec::with_capacity(n);
        for e in entries.chunks_exact(GENESIS_ENTRY) {
            keys.push(key_at(e, 0));
            accounts.push(Account::new(be_u64(e, KEY_SIZE)));
        }
        Self::build(keys, accounts)
    }

    /// From stored records (`pk || balance || nonce || delegate`, each 56 bytes).
    #[cfg(test)]
    pub fn from_records(records: &[u8]) -> Result<Self, String> {
        let mut parts = RecordParts::default();
        parts.add(records)?;
        parts.build()
    }

    fn build(keys: Vec<Key>, accounts: Vec<Account>) -> Result<Self, String> {
        let n = keys.len();
        let mut total: u64 = 0;
        for (id, a) in accounts.iter().enumerate() {
            total = total
                .checked_add(a.balance)
                .filter(|&t| t < SUPPLY_LIMIT)
                .ok_or_else(|| format!("account {id}: the total of the balances reaches 2**63"))?;
            if a.delegate != NO_DELEGATE && slot(a.delegate, n).is_none() {
                return Err(format!(
                    "account {id}: delegate {} is not an account",
                    a.delegate
                ));
            }
        }
        let mut index = HashMap::with_capacity(n);
        for (id, key) in (0u64..).zip(&keys) {
            if let Some(first) = index.insert(*key, id) {
                return Err(format!(
                    "account {id}: public key {} repeats account {first}",
                    hex(key)
                ));
            }
        }
        Ok(Accounts {
            keys,
            accounts,
            index,
            total,
            version: 0,
        })
    }

    /// The index of the first key that may not own an account, if any.
    pub fn first_invalid_key(&self) -> Option<usize> {
        valid_keys(&self.keys).iter().position(|ok| !ok)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn id_of(&self, key: &Key) -> Option<u64> {
        self.index.get(key).copied()
    }

    pub fn key(&self, id: u64) -> Option<&Key> {
        slot(id, self.keys.len()).and_then(|i| self.keys.get(i))
    }

    pub fn get(&self, id: u64) -> Option<Account> {
        slot(id, self.accounts.len()).and_then(|i| self.accounts.get(i).copied())
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The balances by id as they were before the blocks of `undos` (newest
    /// first): each undo record truncates to the accounts before its block
    /// and restores the old balances.
    pub fn balances_before(&self, undos: &[&[u8]]) -> Result<Vec<u64>, String> {
        self.field_before(undos, |a| a.balance)
    }

    /// The delegates by id (`NO_DELEGATE` for none) as they were before the
    /// blocks of `undos` (newest first), like [`Accounts::balances_before`].
    pub fn delegates_before(&self, undos: &[&[u8]]) -> Result<Vec<u64>, String> {
        self.field_before(undos, |a| a.delegate)
    }

    /// One field of every account as it was before the blocks of `undos`.
    fn field_before(
        &self,
        undos: &[&[u8]],
        field: impl Fn(&Account) -> u64,
    ) -> Result<Vec<u64>, String> {
        let mut values: Vec<u64> = self.accounts.iter().map(&field).collect();
        for (i, undo) in undos.iter().enumerate() {
            let (before, entries) = parse_undo(undo).map_err(|e| format!("undos[{i}]: {e}"))?;
            let len = slot(before, values.len() + 1).ok_or_else(|| {
                format!(
                    "undos[{i}]: {before} accounts before the block, but only {} after it",
                    values.len()
                )
            })?;
            values.truncate(len);
            for e in entries {
                let at = slot(e.id, len)
                    .ok_or_else(|| format!("undos[{i}]: account {} did not exist", e.id))?;
                if let Some(v) = values.get_mut(at) {
                    *v = field(&e.old);
                }
            }
        }
        Ok(values)
    }

    /// The encoded records of ids `start .. start + count` (clipped).
    pub fn records(&self, start: usize, count: usize) -> Vec<u8> {
        let end = start.saturating_add(count).min(self.len());
        let start = start.min(end);
        let mut out = Vec::with_capacity((end - start) * RECORD_SIZE);
        for (k, a) in self.keys[start..end].iter().zip(&self.accounts[start..end]) {
            out.extend_from_slice(&encode_record(k, a));
        }
        out
    }

    /// The reason each transaction of `txs` is refused (`None`: accepted),
    /// applying the accepted ones in order on a scratch overlay over the
    /// state after `pending` (whose own results are not reported).
    pub fn check(&self, pending: &[u8], txs: &[u8]) -> Vec<Option<Reason>> {
        let all: Vec<Tx<'_>> = transactions(pending).chain(transactions(txs)).collect();
        let (mut overlay, known) = Overlay::new(self, &all);
        let mut reasons = Vec::with_capacity(txs.len() / TX_SIZE);
        let first = pending.len() / TX_SIZE;
        for (i, (tx, k)) in all.iter().zip(known).enumerate() {
            let result = overlay.step(*tx, k);
            if i >= first {
                reasons.push(result.err());
            }
        }
        reasons
    }

    /// What applying the transactions of a block by `producer`, then its
    /// reward `credits` (`(account, units)`, to accounts that existed before
    /// the block), changes, or why the block cannot be applied. The state is
    /// not touched.
    pub fn prepare(
        &self,
        txs: &[u8],
        producer: Option<u64>,
        credits: &[(u64, u64)],
    ) -> Result<Delta, BlockError> {
        if let Some(p) = producer {
            if slot(p, self.len()).is_none() {
                return Err(BlockError::UnknownProducer(p));
            }
        }
        let minted = self.check_credits(credits)?;
        let all: Vec<Tx<'_>> = transactions(txs).collect();
        let (mut overlay, known) = Overlay::new(self, &all);
        let tx_count = all.len();
        for (index, (tx, k)) in all.iter().zip(known).enumerate() {
            overlay
                .step(*tx, k)
                .map_err(|reason| BlockError::Transaction { index, reason })?;
        }
        if tx_count > 0 {
            let p = producer.ok_or(BlockError::NoProducer)?;
            let mut acct = overlay.get(p);
            acct.balance = acct
                .balance
                .checked_add(overlay.fees)
                .ok_or(BlockError::FeeOverflow)?;
            overlay.set(p, acct);
        }
        for &(id, units) in credits {
            let mut acct = overlay.get(id);
            // Below the supply limit (checked above) no balance can overflow.
            acct.balance = acct
                .balance
                .checked_add(units)
                .ok_or(BlockError::SupplyLimit {
                    total: self.total,
                    minted,
                })?;
            overlay.set(id, acct);
        }
        let mut delta = overlay.into_delta(tx_count, producer);
        delta.minted = minted;
        Ok(delta)
    }

    /// The units `credits` mint; every credited account exists and the supply
    /// stays below 2^63.
    fn check_credits(&self, credits: &[(u64, u64)]) -> Result<u64, BlockError> {
        let mut minted: u64 = 0;
        for &(id, units) in credits {
            if slot(id, self.len()).is_none() {
                return Err(BlockError::UnknownCredit(id));
            }
            minted = minted.saturating_add(units);
        }
        if self.total.saturating_add(minted) >= SUPPLY_LIMIT {
            return Err(BlockError::SupplyLimit {
                total: self.total,
                minted,
            });
        }
        Ok(minted)
    }

    /// Make `delta` the state. It must have been prepared against this very
    /// state (the same version); nothing changes when it was not.
    pub fn commit(&mut self, delta: &Delta) -> Result<(), String> {
        if delta.version != self.version || delta.accounts_before != self.len() as u64 {
            return Err(format!(
                "the changes were prepared against state version {}, this state is at version {}",
                delta.version, self.version
            ));
        }
        let mut total = i128::from(self.total);
        for c in &delta.changed {
            total += i128::from(c.new.balance) - i128::from(c.old.balance);
        }
        total += delta
            .new_accounts
            .iter()
            .map(|a| i128::from(a.balance))
            .sum::<i128>();
        let total = u64::try_from(total)
            .ok()
            .filter(|&t| t < SUPPLY_LIMIT)
            .ok_or("the changes would take the total supply out of range")?;
        for c in &delta.changed {
            if let Some(a) = slot(c.id, self.len()).and_then(|i| self.accounts.get_mut(i)) {
                *a = c.new;
            }
        }
        for ((key, a), id) in delta
            .new_keys
            .iter()
            .zip(&delta.new_accounts)
            .zip(delta.accounts_before..)
        {
            self.keys.push(*key);
            self.accounts.push(*a);
            self.index.insert(*key, id);
        }
        self.total = total;
        self.version += 1;
        Ok(())
    }
}

/// What the base state knows of a transaction's keys: their ids, looked up
/// for the whole batch up front (in parallel for many).
#[derive(Clone, Copy)]
struct Known {
    sender: Option<u64>,
    recipient: Option<u64>,
}

/// The state as a batch of transactions leaves it, over an untouched base.
struct Overlay<'a> {
    base: &'a Accounts,
    changed: HashMap<u64, Account>,
    new_keys: Vec<Key>,
    new_accounts: Vec<Account>,
    new_index: HashMap<Key, u64>,
    /// Whether each recipient unknown to the base may own an account,
    /// computed up front (in parallel for many).
    key_ok: HashMap<Key, bool>,
    fees: u64,
    /// Whether accepted transfers credit (or create) their recipient: off for
    /// a mempool's [`Layer`], where a sender's transactions count for it alone.
    credits: bool,
}

impl<'a> Overlay<'a> {
    /// An empty overlay for `txs`, and what the base knows of each one's keys.
    fn new(base: &'a Accounts, txs: &[Tx<'_>]) -> (Self, Vec<Known>) {
        let know = |tx: &Tx<'_>| Known {
            sender: base.id_of(&tx.sender()),
            recipient: base.id_of(&tx.recipient()),
        };
        let known: Vec<Known> = if txs.len() >= PARALLEL_MIN {
            txs.par_iter().map(know).collect()
        } else {
            txs.iter().map(know).collect()
        };
        let mut unknown: Vec<Key> = Vec::new();
        let mut seen: HashMap<Key, ()> = HashMap::new();
        for (tx, k) in txs.iter().zip(&known) {
            if tx.kind() == TRANSFER && k.recipient.is_none() {
                if let Entry::Vacant(v) = seen.entry(tx.recipient()) {
                    v.insert(());
                    unknown.push(tx.recipient());
                }
            }
        }
        let key_ok = unknown.iter().copied().zip(valid_keys(&unknown)).collect();
        let overlay = Overlay {
            base,
            changed: HashMap::with_capacity(2 * txs.len()),
            new_keys: Vec::new(),
            new_accounts: Vec::new(),
            new_index: HashMap::with_capacity(unknown.len()),
            key_ok,
            fees: 0,
            credits: true,
        };
        (overlay, known)
    }

    fn base_len(&self) -> u64 {
        self.base.len() as u64
    }

    /// The id of `key`: `in_base` when the base has it, else a created one.
    fn lookup(&self, key: &Key, in_base: Option<u64>) -> Option<u64> {
        in_base.or_else(|| self.new_index.get(key).copied())
    }

    /// The account `id` (which exists: ids come from `lookup` or are checked).
    fn get(&self, id: u64) -> Account {
        if let Some(a) = self.changed.get(&id) {
            return *a;
        }
        match id.checked_sub(self.base_len()) {
            Some(i) => usize::try_from(i)
                .ok()
                .and_then(|i| self.new_accounts.get(i).copied()),
            None => self.base.get(id),
        }
        .unwrap_or(Account::new(0))
    }

    fn set(&mut self, id: u64, account: Account) {
        match id.checked_sub(self.base_len()) {
            Some(i) => {
                if let Some(a) = usize::try_from(i)
                    .ok()
                    .and_then(|i| self.new_accounts.get_mut(i))
                {
                    *a = account;
                }
            }
            None => {
                self.changed.insert(id, account);
            }
        }
    }

    fn create(&mut self, key: Key, account: Account) {
        let id = self.base_len() + self.new_keys.len() as u64;
        self.new_keys.push(key);
        self.new_accounts.push(account);
        self.new_index.insert(key, id);
    }

    fn key_ok(&self, key: &Key) -> bool {
        match self.key_ok.get(key) {
            Some(ok) => *ok,
            None => is_valid_account_key(key),
        }
    }

    /// Apply one transaction, or leave everything as it was and say why not.
    ///
    /// The checks, in order: kind, sender, nonce, amount, recipient (not the
    /// sender; a delegate must have an account), balance, and last the key
    /// of a recipient that gets a new account.
    fn step(&mut self, tx: Tx<'_>, known: Known) -> Result<(), Reason> {
        let kind = tx.kind();
        match kind {
            TRANSFER => {}
            DELEGATION if tx.amount() == 0 => {}
            DELEGATION => return Err(Reason::DelegationAmount),
            _ => return Err(Reason::UnknownKind),
        }
        let sender_key = tx.sender();
        let sender = self
            .lookup(&sender_key, known.sender)
            .ok_or(Reason::UnknownSender)?;
        let mut from = self.get(sender);
        match tx.nonce().cmp(&from.nonce) {
            Ordering::Less => return Err(Reason::NonceTooLow),
            Ordering::Greater => return Err(Reason::NonceTooHigh),
            Ordering::Equal => {}
        }
        from.nonce = from.nonce.checked_add(1).ok_or(Reason::Overflow)?;
        let fee = tx.fee();
        // A layer credits no one, so it sums no fees: there, an answer never depends on
        // another sender's transactions, or on refused ones (`Layer::forget`).
        let fees = if self.credits {
            self.fees.checked_add(fee).ok_or(Reason::Overflow)?
        } else {
            0
        };
        let recipient_key = tx.recipient();
        if kind == DELEGATION {
            let delegate = self
                .lookup(&recipient_key, known.recipient)
                .ok_or(Reason::UnknownDelegate)?;
            from.balance = from
                .balance
                .checked_sub(fee)
                .ok_or(Reason::InsufficientBalance)?;
            from.delegate = if delegate == sender {
                NO_DELEGATE
            } else {
                delegate
            };
            self.set(sender, from);
            self.fees = fees;
            return Ok(());
        }
        let amount = tx.amount();
        if amount == 0 {
            return Err(Reason::ZeroAmount);
        }
        if recipient_key == sender_key {
            return Err(Reason::SelfTransfer);
        }
        let debit = amount.checked_add(fee).ok_or(Reason::InsufficientBalance)?;
        from.balance = from
            .balance
            .checked_sub(debit)
            .ok_or(Reason::InsufficientBalance)?;
        match self.lookup(&recipient_key, known.recipient) {
            Some(to_id) => {
                let mut to = self.get(to_id);
                to.balance = to.balance.checked_add(amount).ok_or(Reason::Overflow)?;
                self.set(sender, from);
                if self.credits {
                    self.set(to_id, to);
                }
            }
            None => {
                if !self.key_ok(&recipient_key) {
                    return Err(Reason::BadRecipientKey);
                }
                self.set(sender, from);
                if self.credits {
                    // The sender is the new account's registrar: its default
                    // delegate (docs/protocol.md §13, §16).
                    let created = Account {
                        delegate: sender,
                        ..Account::new(amount)
                    };
                    self.create(recipient_key, created);
                }
            }
        }
        self.fees = fees;
        Ok(())
    }

    fn into_delta(self, tx_count: usize, producer: Option<u64>) -> Delta {
        let base = self.base;
        let mut changed: Vec<Changed> = self
            .changed
            .into_iter()
            .filter_map(|(id, new)| {
                let old = base.get(id)?;
                let key = *base.key(id)?;
                (old != new).then_some(Changed { id, key, old, new })
            })
            .collect();
        changed.sort_unstable_by_key(|c| c.id);
        Delta {
            version: base.version,
            accounts_before: base.len() as u64,
            changed,
            new_keys: self.new_keys,
            new_accounts: self.new_accounts,
            tx_count,
            fees: self.fees,
            producer,
            minted: 0,
        }
    }
}

/// What an [`Overlay`] has changed, owned and kept apart from its base: a
/// layer that outlives one call, a mempool's pending state. Accepted
/// transactions count for their sender only (nonce and balance): no credit
/// or account creation, which a block may include without the transaction
/// that spends it (docs/protocol.md §13, Mempool), and no sum of fees. It
/// is only meaningful over the state version it was built on.
#[derive(Default, Debug)]
pub struct Layer {
    changed: HashMap<u64, Account>,
}

impl Layer {
    /// Accounts the layer changed.
    pub fn changed(&self) -> usize {
        self.changed.len()
    }

    /// Drop what the layer holds for account `id`: as only a sender's own
    /// transactions change it, that undoes exactly that sender's.
    pub fn forget(&mut self, id: u64) {
        self.changed.remove(&id);
    }

    /// Account `id` as the layer has it, None when unchanged (the base's).
    pub fn account(&self, id: u64) -> Option<Account> {
        self.changed.get(&id).copied()
    }

    /// Start account `id` from `account`: its state after transactions
    /// stepped earlier on a layer over the same base (a mempool's cache).
    pub fn insert(&mut self, id: u64, account: Account) {
        self.changed.insert(id, account);
    }
}

impl Accounts {
    /// Step `txs` in order on `layer` over this state with the rules of
    /// [`Accounts::check`] (the same [`Overlay::step`], without credits:
    /// see [`Layer`]), keeping the effects of the accepted ones in `layer`:
    /// the reason for each, None when accepted. `layer` must have been built
    /// over this state as it is now.
    pub fn step_layer(&self, layer: &mut Layer, txs: &[u8]) -> Vec<Option<Reason>> {
        let all: Vec<Tx<'_>> = transactions(txs).collect();
        let (mut overlay, known) = Overlay::new(self, &all);
        overlay.changed = std::mem::take(&mut layer.changed);
        overlay.credits = false;
        let reasons = all
            .iter()
            .zip(known)
            .map(|(tx, k)| overlay.step(*tx, k).err())
            .collect();
        layer.changed = overlay.changed;
        reasons
    }
}

/// Lower-case hex, for error messages.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::super::keys::{derive_public_keys, devnet_seeds};
    use super::*;

    fn keys(n: usize) -> Vec<Key> {
        let pks = derive_public_keys(&devnet_seeds(&[1; 32], 0, n));
        pks.chunks_exact(32).map(|c| key_at(c, 0)).collect()
    }

    fn genesis(keys: &[Key], balance: u64) -> Accounts {
        let mut entries = Vec::new();
        for k in keys {
            entries.extend_from_slice(k);
            entries.extend_from_slice(&balance.to_be_bytes());
        }
        Accounts::from_genesis(&entries).unwrap()
    }

    fn tx(kind: u8, from: &Key, to: &Key, amount: u64, fee: u64, nonce: u64) -> [u8; TX_SIZE] {
        let mut raw = [0u8; TX_SIZE];
        raw[0] = kind;
        raw[SENDER..RECIPIENT].copy_from_slice(from);
        raw[RECIPIENT..AMOUNT].copy_from_slice(to);
        raw[AMOUNT..FEE].copy_from_slice(&amount.to_be_bytes());
        raw[FEE..NONCE].copy_from_slice(&fee.to_be_bytes());
        raw[NONCE..NONCE + 8].copy_from_slice(&nonce.to_be_bytes());
        raw
    }

    fn cat(txs: &[[u8; TX_SIZE]]) -> Vec<u8> {
        txs.concat()
    }

    #[test]
    fn a_second_spend_of_the_same_funds_is_refused() {
        let k = keys(3);
        let state = genesis(&k, 100);
        let txs = cat(&[
            tx(TRANSFER, &k[0], &k[1], 60, 1, 0),
            tx(TRANSFER, &k[0], &k[2], 60, 1, 1),
            tx(TRANSFER, &k[0], &k[2], 30, 1, 1),
            tx(TRANSFER, &k[0], &k[2], 30, 1, 1),
        ]);
        assert_eq!(
            state.check(&[], &txs),
            vec![
                None,
                Some(Reason::InsufficientBalance),
                None,
                Some(Reason::NonceTooLow)
            ]
        );
    }

    #[test]
    fn prepare_commit_and_undo() {
        let k = keys(5);
        let mut state = genesis(&k[..3], 100);
        let txs = cat(&[
            tx(TRANSFER, &k[0], &k[3], 10, 2, 0),
            tx(TRANSFER, &k[3], &k[4], 1, 0, 0), // k[3] exists once the first is applied
            tx(DELEGATION, &k[1], &k[2], 0, 1, 0),
        ]);
        let delta = state.prepare(&txs, Some(2), &[]).unwrap();
        assert_eq!(state.len(), 3, "prepare changes nothing");
        state.commit(&delta).unwrap();
        assert_eq!(state.len(), 5);
        assert_eq!(
            state.get(0).unwrap(),
            Account {
                balance: 88,
                nonce: 1,
                delegate: NO_DELEGATE
            }
        );
        assert_eq!(
            state.get(1).unwrap(),
            Account {
                balance: 99,
                nonce: 1,
                delegate: 2
            }
        );
        assert_eq!(state.get(2).unwrap().balance, 103);
        assert_eq!(
            state.get(3).unwrap(),
            Account {
                balance: 9,
                nonce: 1,
                delegate: 0
            },
            "created by account 0: its registrar is its delegate"
        );
        assert_eq!(
            state.get(4).unwrap(),
            Account {
                balance: 1,
                nonce: 0,
                delegate: 3
            },
            "a registrar created in the same block"
        );
        assert_eq!(state.total(), 300);
        assert_eq!(
            state.balances_before(&[&delta.undo()]).unwrap(),
            vec![100, 100, 100]
        );
        assert!(state.commit(&delta).is_err(), "a delta applies once");
    }

    #[test]
    fn a_delegation_overrides_the_registrar_and_to_oneself_clears_it() {
        let k = keys(4);
        let mut state = genesis(&k[..2], 100);
        let created = state
            .prepare(&tx(TRANSFER, &k[0], &k[2], 50, 0, 0), Some(0), &[])
            .unwrap();
        state.commit(&created).unwrap();
        assert_eq!(state.get(2).unwrap().delegate, 0, "the registrar");
        assert_eq!(state.get(0).unwrap().delegate, NO_DELEGATE, "genesis: none");
        let txs = cat(&[
            tx(DELEGATION, &k[2], &k[1], 0, 0, 0),
            tx(TRANSFER, &k[2], &k[3], 5, 0, 1),
        ]);
        let delta = state.prepare(&txs, Some(0), &[]).unwrap();
        state.commit(&delta).unwrap();
        assert_eq!(state.get(2).unwrap().delegate, 1, "explicit overrides");
        assert_eq!(state.get(3).unwrap().delegate, 2);
        let (_, undo) = parse_undo(&delta.undo()).unwrap();
        let old = undo.iter().find(|e| e.id == 2).unwrap().old;
        assert_eq!(old.delegate, 0, "the undo record keeps the old delegate");
        let own = state
            .prepare(&tx(DELEGATION, &k[3], &k[3], 0, 0, 0), Some(0), &[])
            .unwrap();
        state.commit(&own).unwrap();
        assert_eq!(
            state.get(3).unwrap().delegate,
            NO_DELEGATE,
            "delegating to oneself clears the default too"
        );
        assert_eq!(
            state
                .delegates_before(&[&own.undo(), &delta.undo()])
                .unwrap(),
            vec![NO_DELEGATE, NO_DELEGATE, 0],
            "before the last two blocks"
        );
        assert_eq!(
            state.delegates_before(&[&own.undo()]).unwrap(),
            vec![NO_DELEGATE, NO_DELEGATE, 1, 2]
        );
        let records = state.records(0, state.len());
        let reopened = Accounts::from_records(&records).unwrap();
        for id in 0..4 {
            assert_eq!(reopened.get(id), state.get(id), "account {id} reopened");
        }
    }

    #[test]
    fn a_block_is_all_or_nothing() {
        let k = keys(2);
        let state = genesis(&k, 100);
        let txs = cat(&[
            tx(TRANSFER, &k[0], &k[1], 10, 0, 0),
            tx(TRANSFER, &k[0], &k[1], 10, 0, 5),
        ]);
        assert_eq!(
            state.prepare(&txs, Some(0), &[]),
            Err(BlockError::Transaction {
                index: 1,
                reason: Reason::NonceTooHigh
            })
        );
        assert_eq!(state.prepare(&[], None, &[]).unwrap().changed, vec![]);
        assert_eq!(
            state.prepare(&txs[..TX_SIZE], Some(9), &[]),
            Err(BlockError::UnknownProducer(9))
        );
    }

    #[test]
    fn small_order_and_non_canonical_recipients_get_no_account() {
        let k = keys(1);
        let state = genesis(&k, 100);
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut non_canonical = [0xffu8; 32];
        non_canonical[31] = 0x7f; // y = 2^255 - 1 >= p
        for bad in [identity, [0; 32], non_canonical] {
            let t = tx(TRANSFER, &k[0], &bad, 1, 0, 0);
            assert_eq!(state.check(&[], &t), vec![Some(Reason::BadRecipientKey)]);
        }
    }

    /// The definition: decode, re-encode, compare, and not small-order.
    fn by_definition(key: &Key) -> bool {
        let encoded = CompressedEdwardsY(*key);
        encoded
            .decompress()
            .is_some_and(|p| p.compress() == encoded && !p.is_small_order())
    }

    #[test]
    fn account_key_check_matches_its_definition() {
        let mut cases: Vec<Key> = Vec::new();
        // Every y >= p, every small-order point, y = 0, ±1, both sign bits.
        for low in 0xedu8..=0xff {
            let mut k = [0xffu8; 32];
            k[0] = low;
            k[31] = 0x7f;
            cases.push(k);
        }
        for t in curve25519_dalek::constants::EIGHT_TORSION.iter() {
            cases.push(t.compress().to_bytes());
        }
        for y in [0u8, 1, 2, 3] {
            let mut k = [0u8; 32];
            k[0] = y;
            cases.push(k);
        }
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        cases.push(minus_one);
        cases.extend(keys(64));
        let seeds = devnet_seeds(&[9; 32], 0, 4000);
        cases.extend(seeds.chunks_exact(32).map(|c| key_at(c, 0)));
        let signed: Vec<Key> = cases
            .iter()
            .map(|k| {
                let mut k = *k;
                k[31] ^= 0x80;
                k
            })
            .collect();
        cases.extend(signed);
        let mut valid = 0;
        for k in &cases {
            assert_eq!(is_valid_account_key(k), by_definition(k), "key {}", hex(k));
            valid += usize::from(by_definition(k));
        }
        assert!(
            valid > 100 && valid < cases.len() - 100,
            "both outcomes are covered"
        );
    }

    #[test]
    fn repeated_keys_and_oversized_totals_are_refused() {
        let k = keys(1);
        let mut entries = Vec::new();
        for _ in 0..2 {
            entries.extend_from_slice(&k[0]);
            entries.extend_from_slice(&1u64.to_be_bytes());
        }
        assert!(Accounts::from_genesis(&entries)
            .unwrap_err()
            .contains("repeats account 0"));
        let k = keys(2);
        let mut entries = Vec::new();
        for key in &k {
            entries.extend_from_slice(key);
            entries.extend_from_slice(&(1u64 << 62).to_be_bytes());
        }
        assert!(Accounts::from_genesis(&entries)
            .unwrap_err()
            .contains("2**63"));
    }

    #[test]
    fn a_layer_counts_a_transaction_for_its_sender_alone() {
        let k = keys(4);
        let fresh = keys(6)[5];
        let state = genesis(&k[..3], 100);
        let txs = [
            tx(TRANSFER, &k[0], &k[1], 60, 1, 0),
            tx(TRANSFER, &k[1], &fresh, 150, 1, 0),
            tx(TRANSFER, &fresh, &k[2], 10, 1, 0),
            tx(TRANSFER, &k[0], &k[2], 60, 1, 1),
            tx(DELEGATION, &k[2], &k[1], 0, 1, 0),
            tx(TRANSFER, &k[3], &k[0], 1, 1, 0),
            tx(TRANSFER, &k[1], &fresh, 99, 1, 0),
            tx(TRANSFER, &k[1], &k[0], 1, 0, 1),
            tx(TRANSFER, &k[0], &k[1], 38, 1, 1),
        ];
        let expected = vec![
            None,
            Some(Reason::InsufficientBalance),
            Some(Reason::UnknownSender),
            Some(Reason::InsufficientBalance),
            None,
            Some(Reason::UnknownSender),
            None,
            Some(Reason::InsufficientBalance),
            None,
        ];
        for split in 0..=txs.len() {
            let (first, second) = txs.split_at(split);
            let mut layer = Layer::default();
            let mut reasons = state.step_layer(&mut layer, &cat(first));
            reasons.extend(state.step_layer(&mut layer, &cat(second)));
            assert_eq!(reasons, expected, "split {split}");
            assert_eq!(layer.changed(), 3);
        }
        // Sender by sender, the order across senders does not matter.
        let mut by_sender: Vec<usize> = (0..txs.len()).collect();
        by_sender.sort_by_key(|&i| Tx(&txs[i]).sender());
        let sorted: Vec<[u8; TX_SIZE]> = by_sender.iter().map(|&i| txs[i]).collect();
        let reasons = state.step_layer(&mut Layer::default(), &cat(&sorted));
        for (j, &i) in by_sender.iter().enumerate() {
            assert_eq!(reasons[j], expected[i], "transaction {i}");
        }
        // `check` credits: the same stream accepts k1's first transfer.
        assert_eq!(state.check(&[], &cat(&txs))[1], None);
    }

    #[test]
    fn a_layer_sums_no_fees_so_forgotten_ones_change_no_answer() {
        let k = keys(3);
        let rich = 1u64 << 61;
        let state = genesis(&k, rich);
        let big = tx(TRANSFER, &k[0], &k[1], 1, rich - 1, 0);
        let mut layer = Layer::default();
        // Accepted, then forgotten (a refused signature): many times over, whose fees
        // would sum past 2^64 if the layer kept them.
        for _ in 0..10 {
            assert_eq!(state.step_layer(&mut layer, &big), vec![None]);
            layer.forget(0);
        }
        let honest = tx(TRANSFER, &k[1], &k[2], 1, u64::MAX - 1, 0);
        assert_eq!(
            state.step_layer(&mut layer, &honest),
            vec![Some(Reason::InsufficientBalance)],
            "refused for its own balance, not an overflow of others' fees"
        );
        let small = tx(TRANSFER, &k[1], &k[2], 1, 1, 0);
        assert_eq!(state.step_layer(&mut layer, &small), vec![None]);
        // `check` (a block's rules) still sums the fees it will credit.
        let both = cat(&[big, tx(TRANSFER, &k[1], &k[2], 1, u64::MAX - 1, 0)]);
        assert_eq!(state.check(&[], &both), vec![None, Some(Reason::Overflow)]);
    }
}

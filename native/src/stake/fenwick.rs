//! The stake table's core: a Fenwick (binary indexed) tree of `u64` balances.
//!
//! Node `i` (0-based) holds the sum of `balance[i & (i + 1) ..= i]`. With the
//! total below 2^63, every node fits a `u64`. The tree is all we keep: 8 bytes
//! per account. A balance is its node minus the node's children, which are
//! one on average (`trailing_ones(i)` of them), so reading it costs O(1) on
//! average and O(log n) at worst. Pure Rust, no Python: the glue is in `stake.rs`.

use crate::chain::{Link, VrfChain, HASH_SIZE};

/// The total stake must stay below 2^63 (PROTOCOL §1).
pub const TOTAL_LIMIT: u64 = 1 << 63;

/// Why a change to the table was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StakeError {
    /// Adding the balance of `account` brings the running total to `>= 2^63`.
    TotalOverflow { account: usize, total: u128 },
    /// A batch of updates would leave the total at `total >= 2^63`.
    UpdateOverflow { total: u128 },
    /// The table's total is zero: nobody can hold a seat.
    ZeroTotal,
    /// An update names an account the table does not have.
    UnknownAccount { account: usize, len: usize },
}

impl std::fmt::Display for StakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TotalOverflow { account, total } => write!(
                f,
                "total stake must stay below 2^63: the balance of account {account} brings it to \
                 at least {total}"
            ),
            Self::UpdateOverflow { total } => write!(
                f,
                "total stake must stay below 2^63: the update would make it {total}"
            ),
            Self::ZeroTotal => f.write_str("stake table total is zero"),
            Self::UnknownAccount { account, len } => write!(
                f,
                "unknown account {account}: the stake table has {len} accounts"
            ),
        }
    }
}

/// The Fenwick tree of the balances by account id, and their total.
#[derive(Clone, Debug, Default)]
pub struct Stakes {
    tree: Vec<u64>,
    total: u64,
}

/// Grow a vector by an eighth when full: amortised O(1) pushes, at most
/// 12.5 % spare capacity (instead of up to 100 % with doubling).
fn reserve_gently(v: &mut Vec<u64>, additional: usize) {
    let needed = v.len().saturating_add(additional);
    if needed > v.capacity() {
        let grown = v.len().saturating_add(v.len() / 8).max(needed).max(1024);
        v.reserve_exact(grown - v.len());
    }
}

/// `start + sum(balances)` when it stays below 2^63; otherwise the index of the
/// first balance that brings the running sum to 2^63, and that sum (saturated).
fn check_sum(start: u64, balances: &[u64]) -> Result<u64, (usize, u128)> {
    let mut total = start;
    for (i, &b) in balances.iter().enumerate() {
        total = total.saturating_add(b);
        if total >= TOTAL_LIMIT {
            return Err((i, u128::from(total)));
        }
    }
    Ok(total)
}

impl Stakes {
    /// The table of `balances` (index = account id), built in place in O(n).
    pub fn new(balances: Vec<u64>) -> Result<Self, StakeError> {
        let total = check_sum(0, &balances)
            .map_err(|(account, total)| StakeError::TotalOverflow { account, total })?;
        let mut tree = balances;
        let n = tree.len();
        for i in 0..n {
            let parent = i | (i + 1);
            if parent < n {
                // Every node is a sum of balances whose total is < 2^63: no overflow.
                tree[parent] += tree[i];
            }
        }
        Ok(Self { tree, total })
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// W: the sum of all balances (< 2^63).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The sum of the children of node `i`: the nodes covering `[i & (i + 1), i)`.
    /// Reads only nodes below `i`. Wrapping, so that it stays exact (mod 2^64)
    /// while an update passes through totals above 2^64.
    #[inline]
    fn children_sum(&self, i: usize) -> u64 {
        let lo = i & (i + 1);
        let mut sum = 0u64;
        let mut c = i;
        while c > lo {
            let child = c - 1;
            sum = sum.wrapping_add(self.tree[child]);
            c = child & (child + 1);
        }
        sum
    }

    pub fn balance(&self, account: usize) -> Option<u64> {
        let node = *self.tree.get(account)?;
        Some(node.wrapping_sub(self.children_sum(account)))
    }

    /// Bytes of heap and struct this table holds.
    pub fn nbytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.tree.capacity() * std::mem::size_of::<u64>()
    }

    /// A copy with no spare capacity.
    pub fn snapshot(&self) -> Self {
        self.clone()
    }

    /// `balance[0] + ... + balance[k - 1]` (k clipped to the length), in O(log n).
    pub fn prefix_sum(&self, k: usize) -> u64 {
        let mut k = k.min(self.len());
        let mut sum = 0u64;
        while k > 0 {
            // A prefix of balances whose total is < 2^63: no overflow.
            sum += self.tree[k - 1];
            k &= k - 1;
        }
        sum
    }

    /// Keeps accounts `0 .. len` only (no change when `len >= len()`), in O(log n):
    /// node `i` covers accounts `i & (i + 1) ..= i`, so the nodes below `len` do not
    /// depend on the accounts removed.
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.total = self.prefix_sum(len);
            self.tree.truncate(len);
        }
    }

    /// Adds `delta` (mod 2^64) to the balance at `account` in the tree only.
    fn tree_add(&mut self, account: usize, delta: u64) {
        let mut i = account;
        while let Some(node) = self.tree.get_mut(i) {
            *node = node.wrapping_add(delta);
            i |= i + 1;
        }
    }

    /// Appends accounts with `balances`, ids `len() ..`, in O(k + log n).
    /// All or nothing: refused when the total would reach 2^63.
    pub fn extend(&mut self, balances: &[u64]) -> Result<(), StakeError> {
        let total =
            check_sum(self.total, balances).map_err(|(i, total)| StakeError::TotalOverflow {
                account: self.len() + i,
                total,
            })?;
        reserve_gently(&mut self.tree, balances.len());
        for &b in balances {
            // Node i is its own balance plus its children, which exist already.
            let node = b + self.children_sum(self.tree.len());
            self.tree.push(node);
        }
        self.total = total;
        Ok(())
    }

    /// Sets `balance[account] = value` for each pair, in order (a later pair for
    /// the same account wins), in O(log n) each. All or nothing: refused, with
    /// nothing changed, when an account is unknown or the new total would reach 2^63.
    pub fn update(&mut self, changes: &[(usize, u64)]) -> Result<(), StakeError> {
        let len = self.len();
        if let Some(&(account, _)) = changes.iter().find(|&&(a, _)| a >= len) {
            return Err(StakeError::UnknownAccount { account, len });
        }
        let mut total = u128::from(self.total);
        let mut undo = Vec::with_capacity(changes.len());
        for &(account, value) in changes {
            let Some(old) = self.balance(account) else {
                continue; // checked above
            };
            undo.push((account, old));
            total = total - u128::from(old) + u128::from(value);
            self.tree_add(account, value.wrapping_sub(old));
        }
        if total >= u128::from(TOTAL_LIMIT) {
            // Wrapping arithmetic is a group: undoing every step in reverse
            // restores each node exactly, whatever it went through meanwhile.
            for &(account, old) in undo.iter().rev() {
                if let Some(now) = self.balance(account) {
                    self.tree_add(account, old.wrapping_sub(now));
                }
            }
            return Err(StakeError::UpdateOverflow { total });
        }
        // total < 2^63 fits a u64.
        self.total = total as u64;
        Ok(())
    }

    /// The smallest account `j` with `balance[0] + ... + balance[j] > x`, for `x < W`,
    /// by descending the tree in O(log n).
    #[inline]
    #[cfg(test)]
    pub fn seat_of(&self, x: u64) -> usize {
        let n = self.tree.len();
        if n == 0 {
            return 0;
        }
        let mut pos = 0usize; // accounts known to have prefix sum <= x
        let mut rem = x;
        let mut step = 1usize << (usize::BITS - 1 - n.leading_zeros());
        while step > 0 {
            let next = pos + step;
            if next <= n {
                // Node next - 1 covers accounts pos .. next - 1 (pos is a multiple of 2 * step).
                let node = self.tree[next - 1];
                if node <= rem {
                    pos = next;
                    rem -= node;
                }
            }
            step >>= 1;
        }
        pos
    }

    /// Replaces each `x < W` in `xs` by its seat, `seat_of(x)`.
    ///
    /// The descents run in lockstep, `LANES` at a time, level by level: the
    /// loads of one level are independent, so their cache misses overlap
    /// instead of queueing one descent behind the other.
    pub fn seats_of(&self, xs: &mut [u64]) {
        const LANES: usize = 16;
        let n = self.tree.len();
        if n == 0 {
            xs.fill(0);
            return;
        }
        let top = 1usize << (usize::BITS - 1 - n.leading_zeros());
        for chunk in xs.chunks_mut(LANES) {
            let mut pos = [0usize; LANES];
            let mut rem = [0u64; LANES];
            rem[..chunk.len()].copy_from_slice(chunk);
            let mut step = top;
            while step > 0 {
                for (p, r) in pos.iter_mut().zip(rem.iter_mut()).take(chunk.len()) {
                    let next = *p + step;
                    if next <= n {
                        let node = self.tree[next - 1];
                        if node <= *r {
                            *p = next;
                            *r -= node;
                        }
                    }
                }
                step >>= 1;
            }
            for (x, p) in chunk.iter_mut().zip(pos) {
                *x = p as u64;
            }
        }
    }
}

/// A table of balances that sortition draws seats from.
pub trait Seats {
    /// W: the sum of all balances.
    fn total(&self) -> u64;

    /// Replaces each `x < W` in `xs` by the smallest account `j` with
    /// `balance[0] + ... + balance[j] > x`.
    fn seats_of(&self, xs: &mut [u64]);
}

impl Seats for Stakes {
    fn total(&self) -> u64 {
        self.total
    }

    fn seats_of(&self, xs: &mut [u64]) {
        Stakes::seats_of(self, xs);
    }
}

/// The seats `0 .. out.len()` of step `step` of round `round` in `table` (PROTOCOL §3):
/// seat i is the seat of `int_be(VRF_i(r, s)) mod W`.
pub fn committee_into(
    table: &impl Seats,
    seed: &[u8; HASH_SIZE],
    round: u64,
    step: u32,
    out: &mut [u64],
) -> Result<(), StakeError> {
    let w = table.total();
    if w == 0 {
        return Err(StakeError::ZeroTotal);
    }
    for (x, link) in out.iter_mut().zip(VrfChain::new(seed, round, step)) {
        *x = reduce(&link, w);
    }
    table.seats_of(out);
    Ok(())
}

/// `int_be(link) mod w` over all 256 bits, by Horner's rule on 64-bit limbs:
/// the remainder is below `w < 2^64`, so `rem * 2^64 + limb` fits a `u128`.
#[inline]
pub fn reduce(link: &Link, w: u64) -> u64 {
    let w128 = u128::from(w);
    let mut rem = 0u128;
    for pair in link.chunks_exact(2) {
        let limb = (u64::from(pair[0]) << 32) | u64::from(pair[1]);
        rem = ((rem << 64) | u128::from(limb)) % w128;
    }
    // rem < w <= u64::MAX.
    rem as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::link_bytes;

    fn model_seat(balances: &[u64], x: u64) -> usize {
        let mut sum = 0u64;
        for (j, &b) in balances.iter().enumerate() {
            sum += b;
            if sum > x {
                return j;
            }
        }
        panic!("x >= W");
    }

    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *state >> 11
    }

    fn random_balances(n: usize, seed: u64) -> Vec<u64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                if lcg(&mut s).is_multiple_of(4) {
                    0
                } else {
                    lcg(&mut s) % 1000
                }
            })
            .collect()
    }

    fn check_tree(t: &Stakes, balances: &[u64]) {
        let mut sum = 0;
        assert_eq!(t.prefix_sum(0), 0);
        assert_eq!(t.len(), balances.len());
        for (k, &b) in balances.iter().enumerate() {
            sum += b;
            assert_eq!(t.prefix_sum(k + 1), sum, "prefix {k}");
            assert_eq!(t.balance(k), Some(b), "balance {k}");
        }
        assert_eq!(t.balance(balances.len()), None);
        assert_eq!(t.total(), sum);
    }

    #[test]
    fn build_extend_update_agree_with_prefix_sums() {
        for n in [0, 1, 2, 3, 7, 8, 9, 100, 1025] {
            let balances = random_balances(n, n as u64);
            let t = Stakes::new(balances.clone()).unwrap();
            check_tree(&t, &balances);

            let mut grown = Stakes::new(balances[..n / 3].to_vec()).unwrap();
            grown.extend(&balances[n / 3..]).unwrap();
            check_tree(&grown, &balances);

            let mut updated = t.snapshot();
            let mut model = balances.clone();
            let mut s = 99u64;
            let changes: Vec<(usize, u64)> = (0..n)
                .map(|_| ((lcg(&mut s) as usize) % n.max(1), lcg(&mut s) % 5000))
                .filter(|&(a, _)| a < n)
                .collect();
            for &(a, v) in &changes {
                model[a] = v;
            }
            updated.update(&changes).unwrap();
            check_tree(&updated, &model);
            check_tree(&t, &balances);
        }
    }

    #[test]
    fn seats_match_a_linear_scan() {
        let balances = random_balances(777, 5);
        let t = Stakes::new(balances.clone()).unwrap();
        let xs: Vec<u64> = (0..t.total()).step_by(7).collect();
        let mut seats = xs.clone();
        t.seats_of(&mut seats);
        for (&x, &seat) in xs.iter().zip(&seats) {
            assert_eq!(t.seat_of(x), model_seat(&balances, x), "x = {x}");
            assert_eq!(seat as usize, model_seat(&balances, x), "x = {x}");
        }
    }

    #[test]
    fn overflow_is_refused_and_nothing_changes() {
        let half = 1u64 << 62;
        assert_eq!(
            Stakes::new(vec![half, 5, half - 5]).unwrap_err(),
            StakeError::TotalOverflow {
                account: 2,
                total: u128::from(TOTAL_LIMIT)
            }
        );
        let mut t = Stakes::new(vec![half, 5, half - 6]).unwrap();
        assert_eq!(t.total(), TOTAL_LIMIT - 1);
        let before = t.snapshot();
        let err = t
            .update(&[(1, u64::MAX), (2, 0), (1, 6), (2, half - 5)])
            .unwrap_err();
        assert_eq!(
            err,
            StakeError::UpdateOverflow {
                total: u128::from(TOTAL_LIMIT) + 1
            }
        );
        assert_eq!(
            t.update(&[(0, 1), (3, 1)]),
            Err(StakeError::UnknownAccount { account: 3, len: 3 })
        );
        check_tree(&t, &[half, 5, half - 6]);
        check_tree(&before, &[half, 5, half - 6]);
        assert!(t.extend(&[1]).is_err());
        assert_eq!(t.len(), 3);
        t.update(&[(0, 0), (1, half + 5)]).unwrap();
        check_tree(&t, &[0, half + 5, half - 6]);
        assert_eq!(t.total(), TOTAL_LIMIT - 1);
    }

    #[test]
    fn reduce_is_the_256_bit_remainder() {
        let link: Link = [
            0xffff_ffff,
            0x1234_5678,
            0x9abc_def0,
            1,
            2,
            3,
            0x8000_0000,
            7,
        ];
        let bytes = link_bytes(&link);
        for w in [1u64, 2, 3, 1000, (1 << 63) - 1, 0xdead_beef] {
            // Long division of the 32 bytes, one byte at a time.
            let mut rem = 0u128;
            for &b in &bytes {
                rem = ((rem << 8) | u128::from(b)) % u128::from(w);
            }
            assert_eq!(u128::from(reduce(&link, w)), rem, "w = {w}");
        }
    }

    #[test]
    fn zero_total_has_no_committee() {
        let t = Stakes::new(vec![0, 0]).unwrap();
        let mut out = [0u64; 3];
        assert_eq!(
            committee_into(&t, &[0; 32], 1, 1, &mut out),
            Err(StakeError::ZeroTotal)
        );
    }
}

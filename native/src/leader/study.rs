//! The experiment of the round-robin study (seed 002): heights one after the
//! other, each with its order (PROTOCOL §7) and its author, tallied.
//!
//! Per height `h`: the authors of the last `F` blocks are locked (fewer at
//! the first heights); the others, ascending, are permuted by
//! `T = int_be(H(u32be(h))) mod (N - F)!`; `counts[v][p]` counts validator
//! `v` at position `p < N - F`; the author is the first of the order
//! (`Rule::Quick`), or, when honest validators need `K` rounds
//! (`Rule::SlowHonest(K)`), the study's `block_author_slow_honest_nodes`:
//! scanning the order, the first Byzantine validator (`id < F`) met at a
//! position `i <= K` wins, and once `i >= K` without one, the first of the
//! order. The study's function returns nothing when the order is exhausted
//! before `K` (a short order, `K >= N - F`); the first of the order wins then.
//!
//! The wait of height `h` is the number of blocks until the next block with an
//! honest author (`h + wait`); the heights with no later honest block (the
//! tail) are counted apart, as the study drops them.
//!
//! The seeded variant draws `T` of step `i` (round `r = i + 1`) from
//! `H(Q[r-1] || u64be(r))` (PROTOCOL §7), with the chain of seeds
//! `Q[r] = H(Q[r-1] || u64be(r))` from a given `Q[0]`: `T` of round `r` is
//! `int_be(Q[r]) mod (N - F)!`.
//!
//! `T`, its digits and the permutation of `0 .. N-F` it picks do not depend
//! on who is locked: they are computed in parallel (rayon), one chunk of
//! heights ahead of the author loop, which is sequential (the locks) and only
//! maps that permutation onto the unlocked ids.

use std::fmt;

use rayon::prelude::*;

use super::order::{hash_height, hash_seeded, index_permutation, Radices, Words, MAX_VALIDATORS};

/// Permutation bytes per chunk of heights handed to the author loop.
const CHUNK_BYTES: usize = 1 << 19;
/// Heights per parallel task.
const TASK: usize = 1024;

/// Who authors the block of a height, given its order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Every validator is quick: the first of the order.
    Quick,
    /// Honest validators need `K` rounds; Byzantine ones answer at once.
    SlowHonest(u64),
}

impl Rule {
    #[inline]
    fn author(self, order: &[u8], f: usize) -> u8 {
        match self {
            Rule::Quick => order[0],
            Rule::SlowHonest(k) => {
                for (i, &v) in order.iter().enumerate() {
                    if usize::from(v) < f {
                        return v;
                    }
                    if i as u64 >= k {
                        return order[0];
                    }
                }
                order[0]
            }
        }
    }
}

/// Where `T` comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// `H(u32be(h))`.
    Height,
    /// `H(Q[r-1] || u64be(r))`; holds the seed of the next step.
    Seeded(Words),
}

/// Bad parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StudyError {
    Validators(usize),
    Byzantine { f: usize, n: usize },
    Heights { height: u64, blocks: u64 },
}

impl fmt::Display for StudyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StudyError::Validators(n) => {
                write!(f, "n_validators must be in 1 ..= {MAX_VALIDATORS}, got {n}")
            }
            StudyError::Byzantine { f: b, n } => write!(
                f,
                "byzantine must be below n_validators={n} (someone must propose), got {b}"
            ),
            StudyError::Heights { height, blocks } => write!(
                f,
                "heights must fit in u32: {blocks} more blocks after {height} go past 2**32"
            ),
        }
    }
}

/// The running tallies: locked validators, counts, waits.
#[derive(Clone, Debug)]
struct Tally {
    n: usize,
    f: usize,
    m: usize,
    rule: Rule,
    /// Heights processed.
    height: u64,
    /// The last `F` authors, oldest at `head` once full.
    ring: Vec<u8>,
    head: usize,
    is_locked: [bool; MAX_VALIDATORS],
    /// `counts[v * m + p]`.
    counts: Vec<u64>,
    authors: Vec<u64>,
    /// `waits[w]`: heights whose next honest block came `w` blocks later.
    waits: Vec<u64>,
    /// The first height still waiting for a later honest block.
    pending: u64,
}

impl Tally {
    #[inline]
    fn lock(&mut self, author: u8) {
        if self.f == 0 {
            return;
        }
        if self.ring.len() < self.f {
            self.ring.push(author);
        } else {
            let released = std::mem::replace(&mut self.ring[self.head], author);
            self.is_locked[usize::from(released)] = false;
            self.head = (self.head + 1) % self.f;
        }
        self.is_locked[usize::from(author)] = true;
    }

    #[inline]
    fn record_wait(&mut self, author: u8) {
        if usize::from(author) < self.f {
            return;
        }
        // Heights pending .. height - 1 now have their honest block.
        let longest = (self.height - self.pending) as usize;
        if self.waits.len() <= longest {
            self.waits.resize(longest + 1, 0);
        }
        for w in &mut self.waits[1..=longest] {
            *w += 1;
        }
        self.pending = self.height;
    }

    /// One chunk: `perms` holds the index permutation of `0 .. M` of each
    /// height (`index_permutation`), `out` gets the authors.
    fn process(&mut self, perms: &[u8], out: &mut [u8]) {
        let (n, m) = (self.n, self.m);
        let mut pool = [0u8; MAX_VALIDATORS];
        let mut order = [0u8; MAX_VALIDATORS];
        for (perm, slot) in perms.chunks_exact(m).zip(out.iter_mut()) {
            // The unlocked ids, ascending (len <= v at each write: in bounds).
            let mut len = 0;
            for v in 0..n {
                pool[len] = v as u8;
                len += usize::from(!self.is_locked[v]);
            }
            // More than M unlocked (the first F heights): the head keeps its order.
            let head = len - m;
            order[..head].copy_from_slice(&pool[..head]);
            for (o, &i) in order[head..len].iter_mut().zip(perm) {
                *o = pool[head + usize::from(i)];
            }
            for (p, &v) in order[..m].iter().enumerate() {
                self.counts[usize::from(v) * m + p] += 1;
            }
            let author = self.rule.author(&order[..len], self.f);
            *slot = author;
            self.authors[usize::from(author)] += 1;
            self.lock(author);
            self.record_wait(author);
            self.height += 1;
        }
    }
}

/// The permutation of `0 .. M` of one height from its digest.
#[inline]
fn perm_of(radices: &Radices, value: &Words, perm: &mut [u8]) {
    let mut digits = [0u8; MAX_VALIDATORS];
    let digits = &mut digits[..perm.len()];
    radices.digits(value, digits);
    index_permutation(digits, perm);
}

/// Writes the index permutations of the heights `start ..` into `perms` (`M` bytes per height).
fn fill(source: &mut Source, radices: &Radices, start: u64, perms: &mut [u8]) {
    let m = radices.len();
    match source {
        Source::Height => {
            perms
                .par_chunks_mut(TASK * m)
                .enumerate()
                .for_each(|(task, part)| {
                    let first = start + (task * TASK) as u64;
                    for (i, perm) in part.chunks_exact_mut(m).enumerate() {
                        // The caller keeps every height below 2**32.
                        perm_of(radices, &hash_height((first + i as u64) as u32), perm);
                    }
                });
        }
        Source::Seeded(seed) => {
            let mut links = Vec::with_capacity(perms.len() / m);
            for i in 0..(perms.len() / m) as u64 {
                *seed = hash_seeded(seed, start + i + 1);
                links.push(*seed);
            }
            perms
                .par_chunks_mut(TASK * m)
                .zip(links.par_chunks(TASK))
                .for_each(|(part, words)| {
                    for (perm, w) in part.chunks_exact_mut(m).zip(words) {
                        perm_of(radices, w, perm);
                    }
                });
        }
    }
}

/// The experiment, resumable: `advance` runs more heights on the same state.
#[derive(Clone, Debug)]
pub struct Study {
    radices: Radices,
    source: Source,
    tally: Tally,
}

impl Study {
    /// `n` validators, the first `f` Byzantine (and `f` locked after each block).
    pub fn new(n: usize, f: usize, rule: Rule, source: Source) -> Result<Self, StudyError> {
        if !(1..=MAX_VALIDATORS).contains(&n) {
            return Err(StudyError::Validators(n));
        }
        if f >= n {
            return Err(StudyError::Byzantine { f, n });
        }
        let m = n - f;
        Ok(Self {
            radices: Radices::new(m),
            source,
            tally: Tally {
                n,
                f,
                m,
                rule,
                height: 0,
                ring: Vec::with_capacity(f),
                head: 0,
                is_locked: [false; MAX_VALIDATORS],
                counts: vec![0; n * m],
                authors: vec![0; n],
                waits: vec![0],
                pending: 0,
            },
        })
    }

    /// Whether `blocks` more heights are allowed (unseeded heights are u32).
    pub fn check(&self, blocks: u64) -> Result<(), StudyError> {
        let height = self.tally.height;
        let limit = match self.source {
            Source::Height => 1u64 << 32,
            Source::Seeded(_) => u64::MAX,
        };
        match height.checked_add(blocks) {
            Some(end) if end <= limit => Ok(()),
            _ => Err(StudyError::Heights { height, blocks }),
        }
    }

    /// Runs `authors.len()` more heights, writing their authors.
    pub fn advance(&mut self, authors: &mut [u8]) -> Result<(), StudyError> {
        let chunk = (CHUNK_BYTES / self.tally.m).max(TASK);
        self.advance_in_chunks(authors, chunk)
    }

    /// `advance`, the permutations computed `chunk` heights ahead of the author loop.
    fn advance_in_chunks(&mut self, authors: &mut [u8], chunk: usize) -> Result<(), StudyError> {
        self.check(authors.len() as u64)?;
        let m = self.tally.m;
        let mut pieces = authors.chunks_mut(chunk);
        let Some(mut piece) = pieces.next() else {
            return Ok(());
        };
        let size = piece.len() * m;
        let (mut cur, mut next) = (vec![0u8; size], vec![0u8; size]);
        let Self {
            radices,
            source,
            tally,
        } = self;
        let mut start = tally.height;
        fill(source, radices, start, &mut cur[..piece.len() * m]);
        loop {
            let len = piece.len() * m;
            start += piece.len() as u64;
            match pieces.next() {
                Some(following) => {
                    let ahead = &mut next[..following.len() * m];
                    rayon::join(
                        || tally.process(&cur[..len], piece),
                        || fill(source, radices, start, ahead),
                    );
                    std::mem::swap(&mut cur, &mut next);
                    piece = following;
                }
                None => {
                    tally.process(&cur[..len], piece);
                    return Ok(());
                }
            }
        }
    }

    pub fn n(&self) -> usize {
        self.tally.n
    }

    pub fn f(&self) -> usize {
        self.tally.f
    }

    pub fn rule(&self) -> Rule {
        self.tally.rule
    }

    /// Heights run so far.
    pub fn height(&self) -> u64 {
        self.tally.height
    }

    /// `Q` of the next step in the seeded variant.
    pub fn seed(&self) -> Option<&Words> {
        match &self.source {
            Source::Height => None,
            Source::Seeded(q) => Some(q),
        }
    }

    /// Rows of `counts[v][p]`: validator `v` at position `p < N - F`.
    pub fn counts(&self) -> impl Iterator<Item = &[u64]> {
        self.tally.counts.chunks_exact(self.tally.m)
    }

    /// Blocks authored by each validator.
    pub fn author_counts(&self) -> &[u64] {
        &self.tally.authors
    }

    /// `(wait, heights)` for every wait seen, ascending.
    pub fn waits(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.tally
            .waits
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .map(|(w, &c)| (w as u64, c))
    }

    /// Heights with no later honest block yet (the study drops them).
    pub fn tail(&self) -> u64 {
        self.tally.height - self.tally.pending
    }
}

#[cfg(test)]
mod tests {
    use super::super::order::order_of;
    use super::*;

    /// Height by height with `order_of`, the wait by a forward scan.
    fn reference(n: usize, f: usize, rule: Rule, blocks: usize) -> (Vec<u8>, Vec<u64>, Vec<u64>) {
        let m = n - f;
        let mut locked: Vec<u8> = Vec::new();
        let mut authors = Vec::new();
        let mut counts = vec![0u64; n * m];
        for h in 0..blocks {
            let mut mask = [false; MAX_VALIDATORS];
            for &v in &locked {
                mask[usize::from(v)] = true;
            }
            let order = order_of(n, f, &mask, &hash_height(h as u32));
            for (p, &v) in order[..m].iter().enumerate() {
                counts[usize::from(v) * m + p] += 1;
            }
            let a = rule.author(&order, f);
            authors.push(a);
            locked.push(a);
            if locked.len() > f {
                locked.remove(0);
            }
        }
        let mut waits = vec![0u64; f + 2];
        for h in 0..blocks {
            if let Some(w) = (h + 1..blocks).find(|&j| usize::from(authors[j]) >= f) {
                waits[w - h] += 1;
            }
        }
        (authors, counts, waits)
    }

    #[test]
    fn chunks_and_resumption_agree_with_height_by_height() {
        for (n, f, rule) in [
            (16, 5, Rule::Quick),
            (16, 5, Rule::SlowHonest(5)),
            (7, 2, Rule::SlowHonest(0)),
            (31, 10, Rule::SlowHonest(3)),
        ] {
            let blocks = 3 * TASK + 17;
            let (authors, counts, waits) = reference(n, f, rule, blocks);
            let mut study = Study::new(n, f, rule, Source::Height).unwrap();
            let mut out = vec![0u8; blocks];
            let (a, b) = out.split_at_mut(1000);
            study.advance(a).unwrap();
            study.advance_in_chunks(b, TASK / 2 + 3).unwrap();
            assert_eq!(out, authors);
            assert_eq!(study.tally.counts, counts);
            let mut ours = vec![0u64; f + 2];
            for (w, c) in study.waits() {
                ours[w as usize] = c;
            }
            assert_eq!(ours, waits);
            let counted: u64 = waits.iter().sum();
            assert_eq!(counted + study.tail(), blocks as u64);
        }
    }

    #[test]
    fn first_ten_authors_of_the_study() {
        let mut study = Study::new(16, 5, Rule::Quick, Source::Height).unwrap();
        let mut out = [0u8; 10];
        study.advance(&mut out).unwrap();
        assert_eq!(out, [0, 1, 2, 3, 4, 6, 14, 10, 5, 1]);
        let mut slow = Study::new(16, 5, Rule::SlowHonest(5), Source::Height).unwrap();
        slow.advance(&mut out).unwrap();
        assert_eq!(out, [0, 1, 2, 3, 4, 6, 14, 10, 2, 1]);
    }

    #[test]
    fn heights_stop_at_u32() {
        let study = Study::new(4, 1, Rule::Quick, Source::Height).unwrap();
        assert!(study.check(1 << 32).is_ok());
        assert!(study.check((1 << 32) + 1).is_err());
        assert!(Study::new(4, 4, Rule::Quick, Source::Height).is_err());
        assert!(Study::new(257, 1, Rule::Quick, Source::Height).is_err());
    }
}

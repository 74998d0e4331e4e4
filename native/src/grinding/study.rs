//! The loop of the seed-grinding study: rounds of leaders and seeds over a
//! stake table, a coalition that grinds its seeds, and the tallies.
//!
//! Round `r` from `Q[r-1]`: the leader is the account of seat 0 of step 1
//! (the best priority, PROTOCOL §3); the coalition's seats in the committee
//! of step `step` (size `seats`) are counted. The leader then makes `Q[r]`
//! from its seed payload `"echorand/seed" || 0x00 || genesis_hash ||
//! u64be(r) || Q[r-1]` (PROTOCOL §4, revision 2):
//! - `Kind::Signature`: `Q[r] = H(S || u64be(r))`, `S` an Ed25519 signature.
//!   An honest leader publishes RFC 8032's signature; a coalition leader
//!   makes `k` candidates (`signer.rs`) and publishes the one whose seed is
//!   best for round `r + 1` by its objective (ties: the lowest candidate).
//! - `Kind::Vrf`: `Q[r] = H(beta || u64be(r))`, `beta` the ECVRF output of
//!   the payload: unique, so every leader has one candidate.
//!
//! Every block is non-empty: nobody withholds (see docs/studies.md).

use std::cmp::Reverse;
use std::collections::HashMap;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::signer::{self, Signature};
use crate::chain::HASH_SIZE;
use crate::stake::{committee_into, StakeError, Stakes};
use crate::vrf::{self, ExpandedKey};

/// The seed payload's domain tag (PROTOCOL §2).
pub const SEED_TAG: &[u8] = b"echorand/seed";
/// Bytes of the seed payload.
const PAYLOAD_SIZE: usize = 13 + 1 + HASH_SIZE + 8 + HASH_SIZE;
/// Candidates one worker signs with one shared compression.
const SIGN_CHUNK: usize = 256;

pub type Seed = [u8; HASH_SIZE];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Signature,
    Vrf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    /// The coalition's seats in the committee of `step` of round `r + 1`.
    Seats,
    /// Whether the coalition leads round `r + 1`, then its seats.
    Lead,
}

/// What a study draws and how the coalition grinds.
#[derive(Clone, Debug)]
pub struct Config {
    pub kind: Kind,
    pub candidates: usize,
    pub objective: Objective,
    pub step: u32,
    pub seats: usize,
    pub genesis_hash: Seed,
}

/// Counts over the rounds run so far.
#[derive(Clone, Debug, Default)]
pub struct Tallies {
    pub rounds: u64,
    /// Rounds the coalition led.
    pub leaderships: u64,
    /// The coalition's seats in the committees of `step`, all rounds.
    pub coalition_seats: u64,
    /// Rounds whose seed the coalition chose among more than one candidate.
    pub ground: u64,
}

/// What one round published: its leader, the 64 bytes the seed hashes
/// (`S` or `beta`) and the seed `Q[r]`.
pub struct Record {
    pub leader: u64,
    pub published: [u8; 64],
    pub seed: Seed,
}

pub struct Study {
    stakes: Stakes,
    coalition: Vec<bool>,
    secrets: Vec<[u8; 32]>,
    keys: HashMap<usize, ExpandedKey>,
    config: Config,
    seed: Seed,
    tallies: Tallies,
}

/// `payload || u64be(r)` hashed: the next seed.
fn seed_of(published: &[u8; 64], round: u64) -> Seed {
    Sha256::new()
        .chain_update(published)
        .chain_update(round.to_be_bytes())
        .finalize()
        .into()
}

impl Study {
    /// `secrets[i]` is account `i`'s Ed25519 seed; `coalition[i]` whether it
    /// belongs to the coalition. Both as long as the table.
    pub fn new(
        stakes: Stakes,
        coalition: Vec<bool>,
        secrets: Vec<[u8; 32]>,
        config: Config,
        seed: Seed,
    ) -> Result<Self, StakeError> {
        if stakes.total() == 0 {
            return Err(StakeError::ZeroTotal);
        }
        Ok(Self {
            stakes,
            coalition,
            secrets,
            keys: HashMap::new(),
            config,
            seed,
            tallies: Tallies::default(),
        })
    }

    pub fn tallies(&self) -> &Tallies {
        &self.tallies
    }

    /// `Q[r]` after the rounds run so far (`Q[0]` before any).
    pub fn seed(&self) -> &Seed {
        &self.seed
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The account of seat 0 of step 1 of `round` from `seed`.
    fn leader(&self, seed: &Seed, round: u64) -> usize {
        let mut seat = [0u64; 1];
        // The total is positive (checked in `new`): committee_into cannot fail.
        let _ = committee_into(&self.stakes, seed, round, 1, &mut seat);
        seat[0] as usize
    }

    /// The coalition's seats in the committee of `step` of `round`.
    fn coalition_seats(&self, seed: &Seed, round: u64, buffer: &mut [u64]) -> u32 {
        let _ = committee_into(&self.stakes, seed, round, self.config.step, buffer);
        buffer
            .iter()
            .filter(|&&a| self.coalition[a as usize])
            .count() as u32
    }

    fn key(&mut self, account: usize) -> ExpandedKey {
        let secret = &self.secrets[account];
        self.keys
            .entry(account)
            .or_insert_with(|| ExpandedKey::from_seed(secret))
            .clone()
    }

    /// The payload the leader of `round` signs or proves.
    fn payload(&self, round: u64) -> [u8; PAYLOAD_SIZE] {
        let mut out = [0u8; PAYLOAD_SIZE];
        let parts: [&[u8]; 5] = [
            SEED_TAG,
            &[0],
            &self.config.genesis_hash,
            &round.to_be_bytes(),
            &self.seed,
        ];
        let mut at = 0;
        for part in parts {
            out[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        out
    }

    /// Runs `rounds` rounds; with `records`, pushes what each published.
    pub fn run(&mut self, rounds: u64, mut records: Option<&mut Vec<Record>>) {
        let mut buffer = vec![0u64; self.config.seats];
        for _ in 0..rounds {
            let round = self.tallies.rounds + 1;
            let seed = self.seed;
            let leader = self.leader(&seed, round);
            let in_coalition = self.coalition[leader];
            self.tallies.leaderships += u64::from(in_coalition);
            self.tallies.coalition_seats +=
                u64::from(self.coalition_seats(&seed, round, &mut buffer));
            let payload = self.payload(round);
            let key = self.key(leader);
            let published = match self.config.kind {
                Kind::Vrf => vrf::output(&key, &payload),
                Kind::Signature if in_coalition && self.config.candidates > 1 => {
                    self.tallies.ground += 1;
                    self.grind(&key, &payload, round)
                }
                Kind::Signature => signer::sign(&key, &payload),
            };
            self.seed = seed_of(&published, round);
            self.tallies.rounds = round;
            if let Some(out) = records.as_deref_mut() {
                out.push(Record {
                    leader: leader as u64,
                    published,
                    seed: self.seed,
                });
            }
        }
    }

    /// The coalition leader's choice among `k` signatures of `payload`: the
    /// one whose seed `Q[r]` is best for round `r + 1`.
    fn grind(&self, key: &ExpandedKey, payload: &[u8], round: u64) -> Signature {
        let k = self.config.candidates;
        let r0 = signer::standard_nonce(key, payload);
        let seeds: Vec<Seed> = (0..k.div_ceil(SIGN_CHUNK))
            .into_par_iter()
            .flat_map_iter(|c| {
                let first = c * SIGN_CHUNK;
                let count = SIGN_CHUNK.min(k - first);
                signer::candidates(key, payload, r0, first as u64, count)
                    .into_iter()
                    .map(move |sig| seed_of(&sig, round))
            })
            .collect();
        let next = round + 1;
        let all = || (0..k).collect::<Vec<_>>();
        let pool = match self.config.objective {
            Objective::Seats => all(),
            Objective::Lead => {
                let leading: Vec<usize> = (0..k)
                    .into_par_iter()
                    .filter(|&j| self.coalition[self.leader(&seeds[j], next)])
                    .collect();
                if leading.is_empty() {
                    all()
                } else {
                    leading
                }
            }
        };
        let seats = self.config.seats;
        let best = pool
            .par_iter()
            .map_init(
                || vec![0u64; seats],
                |buffer, &j| (self.coalition_seats(&seeds[j], next, buffer), Reverse(j)),
            )
            .max()
            .map_or(0, |(_, Reverse(j))| j);
        let mut chosen = signer::candidates(key, payload, r0, best as u64, 1);
        chosen.pop().unwrap_or([0u8; 64])
    }
}

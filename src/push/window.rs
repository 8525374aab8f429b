//! How many requests `ferry push` keeps in flight, and how many retries it may still spend.
//!
//! **The window** starts at `--concurrency` (at most 40, the platform's limit). A 429 halves it
//! (never below 1), once per round: 429s answering requests sent before the last halving say
//! nothing new, since the window was already cut for them. After as many successes in a row as
//! the window is wide (about one round), it grows by one, up to where it started. This is TCP's
//! additive increase and multiplicative decrease, as AWS's adaptive retry mode and Salesforce's
//! bulk clients do it.
//!
//! **The retry budget** is a token bucket: a retry costs tokens (a 429 one, any other retry
//! five), every success puts one back, up to the bucket's size. A server that refuses now and
//! then costs nothing in the long run; an outage (every request failing) empties the bucket
//! within a few dozen attempts, and the push stops, naming the failure, instead of hammering a
//! server that is down.

/// The window of requests in flight.
#[derive(Debug, Clone)]
pub struct Window {
    size: usize,
    most: usize,
    /// Bumped at every halving; a request carries the round it was sent in.
    round: u64,
    successes: usize,
}

impl Window {
    pub fn new(most: usize) -> Self {
        let most = most.max(1);
        Self { size: most, most, round: 0, successes: 0 }
    }

    /// How many requests may be in flight now.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The round a request sent now belongs to.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// A 429 for a request sent in `round`: halves the window unless it was halved since.
    pub fn refused(&mut self, round: u64) {
        self.successes = 0;
        if round == self.round {
            self.size = (self.size / 2).max(1);
            self.round += 1;
        }
    }

    /// A request went through (whatever the account's outcome): grows the window by one after a
    /// window's worth of them in a row.
    pub fn succeeded(&mut self) {
        self.successes += 1;
        if self.successes >= self.size && self.size < self.most {
            self.size += 1;
            self.successes = 0;
        }
    }
}

/// What a retry costs from the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// After a 429: the server is busy, not broken.
    Refused,
    /// After a transport failure, a 5xx or a lost answer.
    Failed,
}

/// The retry budget: a token bucket.
#[derive(Debug, Clone)]
pub struct Budget {
    tokens: u32,
    capacity: u32,
}

impl Budget {
    /// What a retry after a failure costs (a 429 costs one).
    pub const FAILED_COST: u32 = 5;

    pub fn new(capacity: u32) -> Self {
        Self { tokens: capacity, capacity }
    }

    /// Takes the cost of a retry; false when the budget cannot pay it (stop the run).
    pub fn spend(&mut self, retry: Retry) -> bool {
        let cost = match retry {
            Retry::Refused => 1,
            Retry::Failed => Self::FAILED_COST,
        };
        match self.tokens.checked_sub(cost) {
            Some(left) => {
                self.tokens = left;
                true
            }
            None => false,
        }
    }

    /// A success puts a token back.
    pub fn refill(&mut self) {
        self.tokens = (self.tokens + 1).min(self.capacity);
    }

    pub fn tokens(&self) -> u32 {
        self.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_halves_the_window_once_per_round() {
        let mut w = Window::new(40);
        let round = w.round();
        w.refused(round);
        assert_eq!(w.size(), 20);
        // Answers to requests sent before the halving do not halve it again.
        for _ in 0..30 {
            w.refused(round);
        }
        assert_eq!(w.size(), 20);
        w.refused(w.round());
        assert_eq!(w.size(), 10);
        for _ in 0..10 {
            w.refused(w.round());
        }
        assert_eq!(w.size(), 1, "never below one");
    }

    #[test]
    fn successes_grow_the_window_by_one_per_round_up_to_where_it_started() {
        let mut w = Window::new(8);
        w.refused(w.round());
        assert_eq!(w.size(), 4);
        for _ in 0..3 {
            w.succeeded();
        }
        assert_eq!(w.size(), 4, "not before a window's worth of successes");
        w.succeeded();
        assert_eq!(w.size(), 5);
        for _ in 0..100 {
            w.succeeded();
        }
        assert_eq!(w.size(), 8, "never above the start");
        // A 429 resets the run of successes.
        let mut w = Window::new(8);
        w.refused(w.round());
        w.succeeded();
        w.succeeded();
        w.refused(0);
        w.succeeded();
        w.succeeded();
        assert_eq!(w.size(), 4);
    }

    #[test]
    fn the_budget_survives_a_429_every_other_request_and_stops_an_outage() {
        let mut b = Budget::new(100);
        for _ in 0..10_000 {
            assert!(b.spend(Retry::Refused));
            b.refill();
        }
        assert_eq!(b.tokens(), 100);
        let mut spent = 0;
        while b.spend(Retry::Failed) {
            spent += 1;
        }
        assert_eq!(spent, 100 / Budget::FAILED_COST);
        b.refill();
        assert!(b.spend(Retry::Refused), "a success buys a 429 retry");
        assert!(!b.spend(Retry::Refused));
    }
}

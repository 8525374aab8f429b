//! The validation threads: one per core, each taking every validate request that is waiting
//! (up to [`BATCH`] bodies or [`BATCH_BYTES`]) and validating them as one chunk
//! ([`crate::engine::validate::validate_requests`]), so that under load the rules' fixed costs
//! are paid once per batch, not per request, and a burst of requests never starts more threads
//! than there are cores. A quiet server validates each request as it comes.
//!
//! The threads are a rayon pool of their own, so that the rules' parallel loops run on the
//! thread that took the batch (or an idle sibling) instead of handing every small batch to the
//! global pool and waiting for it: that hand-off cost more than a one-account batch's rules.

use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use tokio::sync::oneshot;

use crate::outcome::Outcome;
use crate::settings::LiveSettings;

/// The most bodies, and bytes, one batch takes.
const BATCH: usize = 64;
const BATCH_BYTES: usize = 8 << 20;

type Request = (Bytes, oneshot::Sender<Outcome>);

pub(super) struct Validators {
    to: Mutex<Sender<Request>>,
    /// Dropped after `to`: its threads see the channel closed and end.
    _pool: rayon::ThreadPool,
}

impl Validators {
    /// Starts the threads; they end when this is dropped.
    pub(super) fn start(settings: Arc<LiveSettings>) -> Self {
        let (to, from) = std::sync::mpsc::channel::<Request>();
        let from = Arc::new(Mutex::new(from));
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("ferry-validate-{i}"))
            .build()
            .expect("the validation threads start");
        for _ in 0..threads {
            let (settings, from) = (settings.clone(), from.clone());
            pool.spawn(move || run(&settings, &from));
        }
        Self { to: Mutex::new(to), _pool: pool }
    }

    /// The validate outcome of one body; `None` when its batch failed (a panic in the rules).
    pub(super) async fn validate(&self, body: Bytes) -> Option<Outcome> {
        let (reply, outcome) = oneshot::channel();
        self.to.lock().unwrap_or_else(std::sync::PoisonError::into_inner).send((body, reply)).ok()?;
        outcome.await.ok()
    }
}

fn run(live: &LiveSettings, from: &Mutex<Receiver<Request>>) {
    loop {
        let batch = {
            let from = from.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let Ok(first) = from.recv() else { return };
            let mut bytes = first.0.len();
            let mut batch = vec![first];
            while batch.len() < BATCH && bytes < BATCH_BYTES {
                match from.try_recv() {
                    Ok(next) => {
                        bytes += next.0.len();
                        batch.push(next);
                    }
                    Err(_) => break,
                }
            }
            batch
        };
        let bodies: Vec<&[u8]> = batch.iter().map(|(body, _)| body.as_ref()).collect();
        let settings = live.now();
        // A panic fails this batch's requests (their handlers answer 500); the thread goes on.
        let outcomes = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::engine::validate::validate_requests(&settings, &bodies)
        }));
        if let Ok(outcomes) = outcomes {
            for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
    }
}

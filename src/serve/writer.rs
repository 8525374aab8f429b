//! The one writer: a thread that owns the store and the work directory's lock, and turns what
//! the handlers send into batches, so that many requests share one run and one commit instead
//! of one fsync each. It takes what is waiting (up to [`BATCH`] requests, or what arrives within
//! [`GATHER`] of the first), stages the stage requests as one run and creates the create
//! requests as one run per supplier, team and dry-run flag; a repeat of an account goes into
//! the next batch, so that it is an update, not a duplicate within one input.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio::sync::oneshot;

use crate::engine::api::{self, Answer, CreateBatch};
use crate::settings::LiveSettings;
use crate::store::{RequestTag, Store};
use crate::workdir::{Workdir, WorkdirLock};

/// The most requests one batch takes.
const BATCH: usize = 80;
/// How long the writer waits for more requests after the first of a batch. Short: under load
/// the requests that arrive while a batch is written make the next batch anyway (5 ms made
/// creates slower, by leaving the writer idle).
const GATHER: Duration = Duration::from_millis(1);

/// What a handler gets back: the outcome, or why the run failed (a 500).
pub(super) type Reply = oneshot::Sender<Result<Answer, String>>;

/// What one create run has in common: supplier, team, dry run.
type CreateKey = (String, String, bool);

/// A create request waiting in a batch: the account, its request, where its answer goes.
type Waiting = ((String, RequestTag), Reply);

/// One request for the writer.
pub(super) enum Work {
    Stage { body: Bytes, request: RequestTag, reply: Reply },
    Create { supplier: String, team: String, dry_run: bool, account: String, request: RequestTag, reply: Reply },
}

/// Runs until every sender is gone, then returns the store and the lock (dropped by the caller
/// in that order: the store is checkpointed and sealed before the lock goes).
pub(super) fn run(
    live: &LiveSettings,
    wd: &Workdir,
    mut store: Box<dyn Store>,
    mut lock: WorkdirLock,
    work: &Receiver<Work>,
) -> (Box<dyn Store>, WorkdirLock) {
    let mut session = crate::engine::create::Session::default();
    while let Ok(first) = work.recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + GATHER;
        while batch.len() < BATCH {
            match work.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(next) => batch.push(next),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        let settings = &*live.now();
        let (mut stages, mut creates) = (Vec::new(), Vec::new());
        for item in batch {
            match item {
                Work::Stage { body, request, reply } => stages.push((body, request, reply)),
                Work::Create { supplier, team, dry_run, account, request, reply } => {
                    creates.push(((supplier, team, dry_run), (account, request), reply));
                }
            }
        }
        for group in without_repeats(stages, |(body, _, _)| api::account_of(body)) {
            let requests: Vec<(&[u8], RequestTag)> = group.iter().map(|(b, t, _)| (b.as_ref(), t.clone())).collect();
            let answers = api::stage_requests(settings, wd, store.as_mut(), &mut lock, &requests);
            reply_all(group.into_iter().map(|(_, _, r)| r), answers);
        }
        let mut by_key: Vec<(CreateKey, Vec<Waiting>)> = Vec::new();
        for (key, account, reply) in creates {
            match by_key.iter_mut().find(|(k, _)| *k == key) {
                Some((_, items)) => items.push((account, reply)),
                None => by_key.push((key, vec![(account, reply)])),
            }
        }
        for ((supplier, team, dry_run), items) in by_key {
            for group in without_repeats(items, |((account, _), _)| Some(account.clone())) {
                let batch = CreateBatch {
                    supplier: supplier.clone(),
                    team: team.clone(),
                    dry_run,
                    accounts: group.iter().map(|(a, _)| a.clone()).collect(),
                };
                let answers = api::create_requests(settings, wd, store.as_mut(), &mut session, &batch);
                reply_all(group.into_iter().map(|(_, r)| r), answers);
            }
        }
    }
    if let Err(e) = session.finish(store.as_mut(), wd, &live.now().schema) {
        eprintln!("closing the server's create runs: {e} (the next start closes them)");
    }
    (store, lock)
}

/// Splits `items` into groups, in order, none holding two items with the same key (items
/// without one never clash).
fn without_repeats<T, K: PartialEq>(items: Vec<T>, key: impl Fn(&T) -> Option<K>) -> Vec<Vec<T>> {
    let mut groups: Vec<(Vec<K>, Vec<T>)> = Vec::new();
    for item in items {
        let k = key(&item);
        let slot = groups.iter().position(|(keys, _)| k.as_ref().is_none_or(|k| !keys.contains(k)));
        let at = match slot {
            Some(at) => at,
            None => {
                groups.push((Vec::new(), Vec::new()));
                groups.len() - 1
            }
        };
        if let Some(k) = k {
            groups[at].0.push(k);
        }
        groups[at].1.push(item);
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

fn reply_all(replies: impl Iterator<Item = Reply>, answers: Result<Vec<Answer>, crate::error::Error>) {
    match answers {
        Ok(answers) => {
            for (reply, answer) in replies.zip(answers) {
                let _ = reply.send(Ok(answer));
            }
        }
        Err(e) => {
            let message = e.to_string();
            for reply in replies {
                let _ = reply.send(Err(message.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_goes_to_the_next_group() {
        let items = vec![("A", 1), ("B", 2), ("A", 3), ("", 4), ("A", 5), ("C", 6)];
        let groups = without_repeats(items, |(k, _)| (!k.is_empty()).then_some(*k));
        let ids: Vec<Vec<i32>> = groups.iter().map(|g| g.iter().map(|(_, i)| *i).collect()).collect();
        assert_eq!(ids, [vec![1, 2, 4, 6], vec![3], vec![5]]);
    }
}

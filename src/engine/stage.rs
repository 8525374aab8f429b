//! Stage: validate a dump and store its accepted accounts as staged versions, as one run.
//!
//! The order of the steps is what makes a run safe to kill:
//! 1. the run is registered (or, when the same command was interrupted, resumed);
//! 2. staged, quarantine and findings files are written under temporary names;
//! 3. they are synced and renamed (failpoint `stage-files-durable`), and with `--staging`
//!    published to the shared storage, each location's manifest last (failpoint
//!    `stage-files-published`);
//! 4. one store transaction registers every new version and every audit row
//!    (failpoint `stage-committed`);
//! 5. the run's `outcomes.parquet`, written beside the audit rows as they were inserted, is
//!    published and the run is finished.
//!
//! A kill before 4 leaves files no committed version references (re-running overwrites them,
//! `ferry gc` removes them, from the shared storage too); a kill after 4 leaves a committed run
//! whose outcomes the next run exports from the store's audit rows.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::findings;
use crate::ingest::output::{PendingFile, TableSet, writer_properties};
use crate::ingest::{arrow_schemas, ingest};
use crate::rules::RuleContext;
use crate::schema::Schema;
use crate::settings::Settings;
use crate::stage::{AccountFilter, Decision, Stager};

use super::runs::{Counts, OutcomeWriter, finish, finish_written, recover_interrupted};
use crate::clock::now;
use crate::store::{AuditRecord, LineSeen, NewVersion, Run, StageRows, Store, line_hash_text};
use crate::validation::{InputScope, Tally, check_chunk};
use crate::workdir::{Workdir, failpoint, sync_dir};

/// The run's command in the store.
pub const COMMAND: &str = "stage";

/// What a stage run came to.
pub struct Staged {
    pub run_id: String,
    pub counts: Counts,
}

/// Stages `dump` as one run (or finishes the interrupted run of the same command); with
/// `only`, every other account of the dump is ignored: no outcome, no finding, no rows.
pub fn stage(
    settings: &Settings,
    wd: &Workdir,
    store: &mut dyn Store,
    lock: &mut crate::workdir::WorkdirLock,
    dump: &Path,
    only: Option<&AccountFilter>,
    requests: &[crate::store::RequestTag],
) -> Result<Staged, Error> {
    let (schema, ctx) = (&settings.schema, &settings.rules);
    let mut fingerprint = fingerprint(dump, schema, ctx)?;
    if let Some(only) = only {
        fingerprint = format!("{:x}", Sha256::digest(format!("{fingerprint}\n{}", only.describe()).as_bytes()));
    }
    let run_args = serde_json::json!({ "dump": dump.display().to_string() }).to_string();
    let start = store.begin_run(COMMAND, &fingerprint, &run_args, None)?;
    let run = start.run;
    lock.describe(Some(&run.id))?;
    recover_interrupted(store, wd, schema, &run.id)?;
    if start.resumed && run.committed_at.is_some() {
        eprintln!("resuming run {}: its store changes were committed; exporting its outcomes", run.id);
        let counts = finish(store, wd, schema, &run, false)?;
        eprint!("{}", counts.render(&run.id, COMMAND));
        return Ok(Staged { run_id: run.id, counts });
    }
    if start.resumed {
        eprintln!("resuming run {}: it was interrupted before its store changes committed", run.id);
        discard_uncommitted(wd, &run.id)?;
    }
    let counts = stage_dump(dump, settings, wd, store, &run, only, requests)?;
    Ok(Staged { run_id: run.id, counts })
}

fn stage_dump(
    dump: &Path,
    settings: &Settings,
    wd: &Workdir,
    store: &mut dyn Store,
    run: &Run,
    only: Option<&AccountFilter>,
    requests: &[crate::store::RequestTag],
) -> Result<Counts, Error> {
    let (schema, ctx) = (&settings.schema, &settings.rules);
    let super::DumpInput { pool, options, reader, size } = super::DumpInput::open(settings, dump)?;
    let consumed = reader.progress();
    let stager = Stager::new(schema, ctx, store.stage_snapshot()?, only.cloned());
    let run_dir = wd.run_dir(&run.id);
    fs_err::create_dir_all(&run_dir)?;
    let mut findings_file = PendingFile::create(
        run_dir.join("findings.parquet"),
        findings::arrow_schema(),
        writer_properties(schema, "findings"),
    )?;
    let mut quarantine: Option<TableSet> = None;
    let mut staged: HashMap<String, TableSet> = HashMap::new();
    // The accounts staged so far in this run, by supplier (fingerprints: see SeenSet).
    let mut staged_keys: HashMap<String, crate::validation::SeenSet> = HashMap::new();
    let mut scope = InputScope::new(schema);
    let mut tally = Tally::default();
    let bar = super::byte_progress(size);
    let started = Instant::now();
    let raw = arrow_schemas(schema);
    // The store rows go to a writer thread holding the run's one transaction open, so that
    // inserting them overlaps parsing; it commits only after the files are durable.
    // It also writes the audit rows to the run's outcomes file as it inserts them, in the
    // same order, so the file need not be exported from the store after the commit (a tenth
    // of a re-stage, all of it after the dump was read; issue 15). A kill after the commit and
    // before the file is published leaves it to be exported, as for any committed run.
    let (to_store, store_rows) = std::sync::mpsc::sync_channel::<StageRows>(4);
    let mut outcomes = OutcomeWriter::create(schema, wd, &run.id)?;
    store.begin_stage(&run.id)?;
    let (ingested, stored) = std::thread::scope(|threads| {
        let writer = threads.spawn(|| -> Result<OutcomeWriter, Error> {
            for rows in store_rows {
                store.add_to_stage(&run.id, &rows)?;
                outcomes.write(&rows.audit)?;
            }
            Ok(outcomes)
        });
        let ingested = pool.install(|| {
            ingest(
                schema,
                reader,
                options,
                |chunk, out| {
                    check_chunk(schema, ctx, out);
                    let line_hashes = stager.line_hashes(chunk, out);
                    stager.stage_chunk(out, line_hashes)
                },
                |wave| {
                    let StageRows { mut versions, mut seen, mut audit } = StageRows::default();
                    for (mut out, mut chunk) in wave {
                        if scope.check(schema, &mut out) {
                            chunk = stager.stage_chunk(&mut out, std::mem::take(&mut chunk.line_hashes));
                        }
                        tally.add(&out);
                        if !out.findings.is_empty() {
                            findings_file.write(&findings::to_batch(&out.findings))?;
                        }
                        if !chunk.quarantine.is_empty() {
                            let q = match quarantine.as_mut() {
                                Some(q) => q,
                                None => quarantine.insert(TableSet::create(schema, &run_dir.join("quarantine"), &raw)?),
                            };
                            q.write(vec![chunk.quarantine])?;
                        }
                        let finished_at = now();
                        for rows in chunk.staged {
                            let location = Workdir::staging_location(&rows.supplier, &run.id);
                            let set = match staged.entry(rows.supplier.clone()) {
                                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                                std::collections::hash_map::Entry::Vacant(e) => e.insert(TableSet::create(
                                    schema,
                                    &wd.root.join(&location),
                                    &stager.typed().schemas,
                                )?),
                            };
                            let base = set.rows()[0];
                            let seen = staged_keys.entry(rows.supplier.clone()).or_default();
                            let hashes = rows.rows_hashes.into_iter().zip(rows.line_hashes);
                            for (i, (o, (rows_hash, line_hash))) in rows.outcomes.iter().zip(hashes).enumerate() {
                                let o = &mut chunk.outcomes[*o];
                                let external = o.external_account_number.as_deref().unwrap_or_default();
                                // The same account twice in one dump (the repeat rule being off):
                                // the later line replaces the version the earlier one staged.
                                if !seen.insert(external) && o.decision == Decision::Created {
                                    o.decision = Decision::Replaced;
                                }
                                versions.push(NewVersion {
                                    import_supplier: rows.supplier.clone(),
                                    external_account_number: o.external_account_number.clone().unwrap_or_default(),
                                    location: location.clone(),
                                    account_row: base + i as u64,
                                    payload_hash: o.payload_hash.clone().unwrap_or_default(),
                                    rows_hash,
                                    line_hash: line_hash.map(line_hash_text),
                                });
                            }
                            set.write(vec![rows.tables])?;
                        }
                        seen.extend(chunk.seen.iter().map(|&(o, line_hash)| {
                            let o = &chunk.outcomes[o];
                            LineSeen {
                                import_supplier: o.import_supplier.clone().unwrap_or_default(),
                                external_account_number: o.external_account_number.clone().unwrap_or_default(),
                                payload_hash: o.payload_hash.clone().unwrap_or_default(),
                                line_hash: line_hash_text(line_hash),
                            }
                        }));
                        audit.extend(chunk.outcomes.into_iter().map(|o| AuditRecord {
                            run_id: run.id.clone(),
                            operation: COMMAND.to_owned(),
                            attempt: 1,
                            status_code: o.decision.status(),
                            import_supplier: o.import_supplier,
                            external_account_number: o.external_account_number,
                            line: Some(o.line),
                            error_code: o.error_code,
                            body: o.body,
                            kraken_account_number: match o.decision {
                                Decision::AlreadyImported(n) => Some(n),
                                _ => None,
                            },
                            started_at: chunk.started_at.clone(),
                            finished_at: finished_at.clone(),
                            // The request that sent the line (`ferry serve` stages one per line).
                            request:
                                usize::try_from(o.line).ok().and_then(|l| requests.get(l.wrapping_sub(1))).cloned(),
                            push: None,
                        }));
                    }
                    to_store
                        .send(StageRows { versions, seen, audit })
                        .map_err(|_| std::io::Error::other("the store writer stopped (its error follows)"))?;
                    bar.set_position(consumed.load(std::sync::atomic::Ordering::Relaxed));
                    failpoint("stage-writing");
                    Ok(())
                },
            )
        });
        drop(to_store);
        (ingested, writer.join().expect("the store writer does not panic"))
    });
    bar.finish_and_clear();
    let outcomes = match stored.and_then(|outcomes| ingested.map(|_| outcomes).map_err(Error::from)) {
        Ok(outcomes) => outcomes,
        Err(e) => {
            store.rollback_stage()?;
            return Err(e);
        }
    };
    let staging_dirs: Vec<_> = staged.keys().map(|s| wd.root.join(Workdir::staging_location(s, &run.id))).collect();
    let mut by_location: Vec<(String, Vec<crate::ingest::WrittenFile>)> = Vec::with_capacity(staged.len());
    for (supplier, set) in staged {
        by_location.push((Workdir::staging_location(&supplier, &run.id), set.commit()?));
    }
    for dir in &staging_dirs {
        sync_dir(dir)?;
        sync_dir(dir.parent().expect("staging/<supplier>"))?;
    }
    if let Some(q) = quarantine {
        q.commit()?;
        sync_dir(&run_dir.join("quarantine"))?;
    }
    findings_file.commit()?;
    sync_dir(&run_dir)?;
    failpoint("stage-files-durable");
    if let Some(shared) = &wd.files {
        // Other machines read the files from the shared storage: they are there, each
        // location's manifest last, before the store commits what points at them.
        let published = by_location.iter().try_for_each(|(l, written)| {
            let committed = !store.staged_files(l)?.is_empty();
            shared.publish_staged(&wd.root, l, written, committed)
        });
        if let Err(e) = published {
            store.rollback_stage()?;
            return Err(e);
        }
        failpoint("stage-files-published");
    }
    let files: Vec<(String, crate::ingest::WrittenFile)> =
        by_location.into_iter().flat_map(|(l, written)| written.into_iter().map(move |f| (l.clone(), f))).collect();
    store.commit_stage(&run.id, &files)?;
    failpoint("stage-committed");
    let counts = finish_written(store, wd, run, outcomes)?;
    let elapsed = started.elapsed().as_secs_f64();
    eprint!(
        "staged {} in {elapsed:.2} s ({:.1} MB/s): {}{}",
        dump.display(),
        size as f64 / 1e6 / elapsed.max(1e-9),
        tally.render(10),
        counts.render(&run.id, COMMAND)
    );
    Ok(counts)
}

/// Removes what an uncommitted attempt of a run wrote, before the run is done again.
fn discard_uncommitted(wd: &Workdir, run_id: &str) -> Result<(), Error> {
    let staging = wd.staging_root();
    if staging.is_dir() {
        for supplier in fs_err::read_dir(&staging)? {
            let dir = supplier?.path().join(run_id);
            if dir.is_dir() {
                fs_err::remove_dir_all(&dir)?;
            }
        }
    }
    let run_dir = wd.run_dir(run_id);
    if run_dir.is_dir() {
        fs_err::remove_dir_all(&run_dir)?;
    }
    Ok(())
}

/// What identifies "the same command" for resuming: the dump (path, size, modification
/// time), the schema and the reference date.
fn fingerprint(dump: &Path, schema: &Schema, ctx: &RuleContext) -> Result<String, Error> {
    let meta = fs_err::metadata(dump)?;
    let path = fs_err::canonicalize(dump)?;
    let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    let text = format!(
        "{COMMAND}\n{}\n{}\n{:?}\n{}\n{}\n{}",
        path.display(),
        meta.len(),
        modified,
        schema.hash,
        ctx.today,
        ctx.tz
    );
    Ok(format!("{:x}", Sha256::digest(text.as_bytes())))
}

//! Staged and run files on object storage, so that machines sharing a store share its files.
//!
//! With `--staging URL` (`FERRY_STAGING`, or `staging = "…"` in a pipeline) the files a run
//! writes under `staging/` and `runs/` are also published to `URL`, at the same relative keys,
//! and any machine reads them from there. `URL` is `s3://BUCKET[/PREFIX]` (credentials, region
//! and endpoint from the usual `AWS_*` variables) or `file:///ABSOLUTE/DIR` (a shared mount).
//! Without it, the work directory is the only copy, as before.
//!
//! The work directory stays where files are written and read: a run writes its Parquet files
//! locally as it always has (streamed, checksummed, synced), then publishes them; a reader on
//! another machine fetches what it lacks into its own work directory before reading. So the
//! Parquet readers and writers are the same for every setting, and the local folder doubles as
//! a cache.
//!
//! ## Invariants
//!
//! - **Publishing is atomic per object:** every object is one put (S3 puts and multipart
//!   completions are atomic; the local store writes a temporary file and renames it), so a
//!   reader never sees half an object.
//! - **A staged location is committed by its manifest, then the store.** The data files go
//!   first, then `manifest.json` (name, bytes, CRC-32 of each) with a create-only put: a second
//!   writer of the same location is refused instead of overwriting it. Only then does the store
//!   commit the staged versions that point at it. A run killed before that leaves a prefix no
//!   committed version references, which `ferry gc` removes.
//! - **What is fetched is checked:** the store's record of each staged file (bytes and CRC-32)
//!   is the authority, and `engine::staged::check_files` checks the fetched copy
//!   against it as it checks a local one. A fetch lands under a temporary name and is renamed
//!   into place, so two readers fetching at once both end with the whole file.
//! - **Keys are the work directory's relative paths**, already confined by
//!   [`crate::workdir::Workdir::staged_path`]: nothing is fetched outside `staging/` and `runs/`.

use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};

use crate::error::Error;
use crate::ingest::WrittenFile;

/// Files larger than this go up in parts of this size (S3's parts are at least 5 MiB).
const PART: usize = 16 << 20;

/// Where a run's files are published, and the runtime its requests run on.
pub struct SharedFiles {
    /// The setting as given (it holds no secret: credentials come from the environment).
    url: String,
    store: Arc<dyn ObjectStore>,
    /// The key prefix every relative path goes under.
    prefix: String,
    /// object_store is async; its requests run here, whichever thread (or runtime) asks.
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for SharedFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl std::fmt::Display for SharedFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// An object on the shared storage: its key relative to the prefix, and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub path: String,
    pub bytes: u64,
}

impl SharedFiles {
    /// Opens `url`: `s3://BUCKET[/PREFIX]` or `file:///DIR` (made if missing). A malformed or
    /// unsupported URL is a usage error (exit 2).
    pub fn open(url: &str) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::usage(
                format!("--staging {url:?}: {why}"),
                Some("give s3://BUCKET/PREFIX (with AWS_* variables for credentials and endpoint) or file:///DIR"),
            )
        };
        // HTTPS to S3 goes through rustls with ring, as `ferry push` does.
        crate::push::client::install_ring();
        let (store, prefix): (Arc<dyn ObjectStore>, String) = if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket"));
            }
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| bad(&e.to_string()))?;
            (Arc::new(s3), prefix.trim_matches('/').to_owned())
        } else if let Some(dir) = url.strip_prefix("file://") {
            let dir = Path::new(dir);
            if !dir.is_absolute() {
                return Err(bad("a file:// URL needs an absolute path (file:///shared/ferry)"));
            }
            fs_err::create_dir_all(dir)?;
            let local = object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(|e| bad(&e.to_string()))?;
            (Arc::new(local), String::new())
        } else {
            return Err(bad("not an s3:// or file:// URL"));
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ferry-files")
            .enable_all()
            .build()
            .map_err(|e| Error::Io(std::io::Error::other(format!("starting the object storage client: {e}"))))?;
        Ok(Self { url: url.to_owned(), store, prefix, runtime })
    }

    fn key(&self, relative: &str) -> Key {
        if self.prefix.is_empty() { Key::from(relative) } else { Key::from(format!("{}/{relative}", self.prefix)) }
    }

    /// `relative`'s key as messages show it.
    pub fn named(&self, relative: &str) -> String {
        format!("{}/{relative}", self.url.trim_end_matches('/'))
    }

    /// Runs `work` on the client's runtime from any thread, also from inside another runtime
    /// (`ferry serve`'s), where blocking on a second one would panic.
    fn run<T: Send>(&self, work: impl Future<Output = T> + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| self.runtime.block_on(work)).join().expect("an object storage request does not panic")
        })
    }

    fn failed(&self, doing: &str, relative: &str, e: impl std::fmt::Display) -> Error {
        Error::Io(std::io::Error::other(format!("{doing} {}: {e}", self.named(relative))))
    }

    /// Publishes the staged files of `location` (a path relative to `root`), then its manifest
    /// with a create-only put. Called before the store commits the location; `committed` says
    /// whether the store already has (then nothing is written: what it points at stays as it
    /// is). A manifest already there without a commit is this run's own, from an attempt that
    /// was killed before its commit and is now resumed: it is replaced.
    pub fn publish_staged(
        &self,
        root: &Path,
        location: &str,
        files: &[WrittenFile],
        committed: bool,
    ) -> Result<(), Error> {
        let relative = format!("{location}/manifest.json");
        if committed {
            return Err(Error::usage(
                format!(
                    "the store already has staged files at {}; nothing was published over them",
                    self.named(location)
                ),
                Some("run ids are unique, so the store or the shared storage was changed by hand; `ferry check`"),
            ));
        }
        for file in files {
            self.upload(&root.join(location).join(&file.name), &format!("{location}/{}", file.name))?;
        }
        let manifest = serde_json::json!({
            "location": location,
            "files": files.iter().map(|f| serde_json::json!({"name": f.name, "bytes": f.bytes, "crc32": f.crc32}))
                .collect::<Vec<_>>(),
        });
        let key = self.key(&relative);
        let payload = PutPayload::from(serde_json::to_vec_pretty(&manifest).expect("a manifest serialises"));
        let options = PutOptions { mode: PutMode::Create, ..Default::default() };
        let put = match self.run(self.store.put_opts(&key, payload.clone(), options)) {
            Err(object_store::Error::AlreadyExists { .. }) => self.run(self.store.put(&key, payload)),
            other => other,
        };
        put.map(|_| ()).map_err(|e| self.failed("publishing", &relative, e))
    }

    /// Publishes every file of `runs/<run_id>/` (again: what a later step rewrote replaces
    /// the older copy). Temporary files (`.<name>.tmp`) stay behind.
    pub fn publish_run(&self, root: &Path, run_id: &str) -> Result<(), Error> {
        let dir = root.join("runs").join(run_id);
        let mut stack = vec![dir.clone()];
        while let Some(at) = stack.pop() {
            if !at.is_dir() {
                continue;
            }
            for entry in fs_err::read_dir(&at)? {
                let path = entry?.path();
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                if path.is_dir() {
                    stack.push(path);
                } else if !name.starts_with('.') {
                    let relative =
                        path.strip_prefix(root).expect("under the root").to_string_lossy().replace('\\', "/");
                    self.upload(&path, &relative)?;
                }
            }
        }
        Ok(())
    }

    /// Puts the local file `from` at `relative`, in parts when it is large.
    fn upload(&self, from: &Path, relative: &str) -> Result<(), Error> {
        let key = self.key(relative);
        let mut file = fs_err::File::open(from)?;
        let len = file.metadata()?.len();
        if len <= PART as u64 {
            let mut bytes = Vec::with_capacity(len as usize);
            file.read_to_end(&mut bytes)?;
            self.run(self.store.put(&key, PutPayload::from(bytes)))
                .map_err(|e| self.failed("publishing", relative, e))?;
            return Ok(());
        }
        self.run(async {
            let upload = self.store.put_multipart(&key).await?;
            let mut parts = WriteMultipart::new_with_chunk_size(upload, PART);
            loop {
                // Each part is read into its own buffer and handed over as it is, not copied.
                let mut part = vec![0u8; PART];
                let n = read_full(&mut file, &mut part).map_err(generic)?;
                if n == 0 {
                    break;
                }
                part.truncate(n);
                parts.wait_for_capacity(2).await?;
                parts.put(part.into());
            }
            parts.finish().await
        })
        .map_err(|e| self.failed("publishing", relative, e))?;
        Ok(())
    }

    /// Fetches into `root` each file of `location` that is missing there or has another size
    /// (every one when `again`: the local copy is only a cache). The caller checks the files
    /// after (`engine::staged::check_files`).
    pub fn fetch_staged(&self, root: &Path, location: &str, files: &[WrittenFile], again: bool) -> Result<(), Error> {
        for file in files {
            self.fetch(root, &format!("{location}/{}", file.name), file.bytes, again)?;
        }
        Ok(())
    }

    /// Fetches every object under `relative` (a folder such as `runs/<run>`) that is missing
    /// in `root` or has another size there; objects whose name `wanted` refuses are left.
    pub fn fetch_tree(&self, root: &Path, relative: &str, wanted: impl Fn(&str) -> bool) -> Result<(), Error> {
        for object in self.list(relative)?.into_iter().filter(|o| wanted(&o.path)) {
            self.fetch(root, &object.path, object.bytes, false)?;
        }
        Ok(())
    }

    /// Downloads `relative` into `root` unless a copy of `bytes` bytes is there (always when
    /// `again`).
    fn fetch(&self, root: &Path, relative: &str, bytes: u64, again: bool) -> Result<(), Error> {
        let path = root.join(relative);
        if !again && fs_err::metadata(&path).is_ok_and(|m| m.len() == bytes) {
            return Ok(());
        }
        self.download(relative, &path)
    }

    /// Every object under the folder `relative`, with keys relative to the prefix, sorted.
    pub fn list(&self, relative: &str) -> Result<Vec<Object>, Error> {
        let prefix = self.key(relative);
        let strip = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        let metas: Vec<object_store::ObjectMeta> =
            self.run(self.store.list(Some(&prefix)).try_collect()).map_err(|e| self.failed("listing", relative, e))?;
        let mut out: Vec<Object> = metas
            .into_iter()
            .filter_map(|m| {
                let path = m.location.as_ref().strip_prefix(&strip)?.to_owned();
                Some(Object { path, bytes: m.size })
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Deletes every object under the folder `relative`.
    pub fn remove_tree(&self, relative: &str) -> Result<(), Error> {
        for object in self.list(relative)? {
            let key = self.key(&object.path);
            self.run(self.store.delete(&key)).map_err(|e| self.failed("removing", &object.path, e))?;
        }
        Ok(())
    }

    /// Gets `relative` into `to` (under a temporary name, then renamed into place, synced).
    /// Only keys under `staging/` or `runs/` made of plain components are fetched: a listed key
    /// or a manifest's folder never makes ferry write outside the work directory.
    fn download(&self, relative: &str, to: &Path) -> Result<(), Error> {
        if !confined(relative) {
            return Err(Error::usage(
                format!("{} is not a staged or run file; nothing was fetched from it", self.named(relative)),
                Some("ferry fetches only staging/… and runs/… keys without `.`, `..` or `\\` components"),
            ));
        }
        let key = self.key(relative);
        let dir = to.parent().expect("a file under the root");
        fs_err::create_dir_all(dir)?;
        let name = to.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp: PathBuf = dir.join(format!(".{name}.{}.tmp", crate::clock::new_run_id()));
        let result = (|| -> Result<(), Error> {
            let mut file = fs_err::File::create(&tmp)?;
            let got = self.run(async {
                let mut chunks = self.store.get(&key).await?.into_stream();
                while let Some(chunk) = chunks.try_next().await? {
                    file.write_all(&chunk).map_err(generic)?;
                }
                Ok(())
            });
            match got {
                Ok(()) => {}
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(Error::usage(
                        format!("{} is not on the shared storage", self.named(relative)),
                        Some(
                            "the store records it, so it was removed by hand, or --staging names another place than \
                             the run that wrote it used",
                        ),
                    ));
                }
                Err(e) => return Err(self.failed("fetching", relative, e)),
            }
            file.sync_all()?;
            fs_err::rename(&tmp, to)?;
            crate::workdir::sync_dir(dir)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = fs_err::remove_file(&tmp);
        }
        result
    }
}

/// Whether `relative` is a plain path under `staging/` or `runs/`.
fn confined(relative: &str) -> bool {
    let parts: Vec<&str> = relative.split('/').collect();
    matches!(parts.first(), Some(&"staging" | &"runs"))
        && parts.len() >= 2
        && parts.iter().all(|p| !p.is_empty() && *p != "." && *p != ".." && !p.contains(['\\', ':']))
}

/// A local file's error inside an object storage request.
fn generic(e: std::io::Error) -> object_store::Error {
    object_store::Error::Generic { store: "local file", source: Box::new(e) }
}

/// Reads until `buffer` is full or the file ends; how much was read.
fn read_full(file: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buffer.len() {
        match file.read(&mut buffer[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(dir: &Path) -> SharedFiles {
        SharedFiles::open(&format!("file://{}", dir.display())).unwrap()
    }

    #[test]
    fn only_plain_staging_and_run_keys_are_fetched() {
        for ok in ["staging/A/R/accounts.parquet", "runs/R/findings.parquet", "runs/R/quarantine/x.parquet"] {
            assert!(confined(ok), "{ok}");
        }
        for bad in ["staging/../x", "runs//x", "runs/./x", "etc/passwd", "/runs/x", "runs", "runs/a\\b", "runs/C:x"] {
            assert!(!confined(bad), "{bad}");
        }
    }

    #[test]
    fn a_run_folder_round_trips_and_a_large_file_goes_in_parts() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        let files = shared(&tmp.path().join("shared"));
        let large: Vec<u8> = (0..(PART * 2 + 12345)).map(|i| (i % 251) as u8).collect();
        fs_err::create_dir_all(a.join("runs/R/quarantine")).unwrap();
        fs_err::write(a.join("runs/R/findings.parquet"), &large).unwrap();
        fs_err::write(a.join("runs/R/quarantine/accounts.parquet"), b"small").unwrap();
        fs_err::write(a.join("runs/R/.outcomes.parquet.tmp"), b"half").unwrap();
        files.publish_run(&a, "R").unwrap();
        let listed = files.list("runs/R").unwrap();
        let names: Vec<&str> = listed.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(names, ["runs/R/findings.parquet", "runs/R/quarantine/accounts.parquet"], "no temporary file");
        files.fetch_tree(&b, "runs/R", |_| true).unwrap();
        assert_eq!(fs_err::read(b.join("runs/R/findings.parquet")).unwrap(), large);
        assert_eq!(fs_err::read(b.join("runs/R/quarantine/accounts.parquet")).unwrap(), b"small");
        files.remove_tree("runs/R").unwrap();
        assert!(files.list("runs/R").unwrap().is_empty());
    }

    #[test]
    fn a_committed_location_is_never_published_over() {
        let tmp = tempfile::tempdir().unwrap();
        let files = shared(&tmp.path().join("shared"));
        let root = tmp.path().join("wd");
        fs_err::create_dir_all(root.join("staging/A/R")).unwrap();
        fs_err::write(root.join("staging/A/R/accounts.parquet"), b"rows").unwrap();
        let written = [WrittenFile { name: "accounts.parquet".into(), bytes: 4, crc32: crc32fast::hash(b"rows") }];
        let refused = files.publish_staged(&root, "staging/A/R", &written, true).unwrap_err();
        assert!(refused.to_string().contains("already has staged files"), "{refused}");
        assert!(files.list("staging").unwrap().is_empty());
        files.publish_staged(&root, "staging/A/R", &written, false).unwrap();
        // Resumed after a kill before its commit: the same run publishes again.
        files.publish_staged(&root, "staging/A/R", &written, false).unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs_err::read(tmp.path().join("shared/staging/A/R/manifest.json")).unwrap())
                .unwrap();
        assert_eq!(manifest["files"][0]["crc32"], crc32fast::hash(b"rows"));
        fs_err::remove_file(root.join("staging/A/R/accounts.parquet")).unwrap();
        files.fetch_staged(&root, "staging/A/R", &written, false).unwrap();
        assert_eq!(fs_err::read(root.join("staging/A/R/accounts.parquet")).unwrap(), b"rows");
    }
}

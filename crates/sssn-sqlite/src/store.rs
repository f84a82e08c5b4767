//! [`SqliteStore`]: opening the file, the writer thread, the read connections, and the
//! channels opened on it.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use sssn::store::{ChannelSpec, ChannelStorage, ClaimQueue, ClaimScope, Store};
use sssn::{Error, ErrorKind, Result};

use crate::channel::{ChanShared, SqliteChannel};
use crate::durability::Durability;
use crate::error::db_error;
use crate::log_file::LogFile;
use crate::options::{SqliteOptions, Synchronous};
use crate::writer::Writer;
use crate::{ops, schema};

/// A durable store: every channel's messages, cursors, claims, delayed nacks, dead
/// letters and counters in one SQLite file (WAL mode).
///
/// Writes are acknowledged only once committed (with [`Synchronous::Full`], the default,
/// once flushed to the disk); concurrent writes share commits (group commit). Opening the
/// file again, in this process or after a crash, restores every channel exactly: readers
/// resume from their cursors, claims whose lease ran out are claimable, delayed messages
/// come due at their time.
///
/// One `SqliteStore` at a time may have a file open: it holds an exclusive lock on
/// `PATH.lock` until it is dropped, and a second open (from any process) fails with a
/// [`ErrorKind::Store`] error. Clones share the same store; dropping the last one waits
/// for queued writes and closes the file.
///
/// [`Synchronous::Full`]: crate::Synchronous::Full
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<StoreInner>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// Shared by the store handle and every channel handle.
pub(crate) struct StoreInner {
    path: PathBuf,
    // Dropped in this order: read connections, then the writer (which closes the file and
    // releases the lock).
    readers: Mutex<Vec<Connection>>,
    max_idle_readers: usize,
    busy_timeout: std::time::Duration,
    /// Readers wait until what their snapshot holds is on the disk.
    durability: Arc<Durability>,
    /// Log syncs made by the writer (commits and growth), for tests.
    #[cfg_attr(not(test), allow(dead_code))]
    log_syncs: Arc<std::sync::atomic::AtomicU64>,
    channels: tokio::sync::Mutex<HashMap<String, Arc<ChanShared>>>,
    pub(crate) writer: Writer,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with the default options
    /// (`synchronous = FULL`).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens a store from a URL of the form `sqlite:PATH` (`sqlite://PATH` also works).
    pub fn open_url(url: &str) -> Result<Self> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!("'{url}' is not a SQLite store URL (expected sqlite:PATH)"),
                )
            })?;
        Self::open(path)
    }

    /// Opens (creating if needed) the database at `path` with `options`.
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_owned();
        check_directory(&path)?;
        let lock = lock(&path)?;
        let mut conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| db_error(&path, "open", e))?;
        configure_writer(&conn, &path, &options)?;
        let log = LogFile::attach(
            &mut conn,
            &path,
            options.synchronous == Synchronous::Full,
            options.checkpoint_pages,
            LOG_SIZE_LIMIT,
        )
        .map_err(|e| db_error(&path, "open", e))?;
        let log_syncs = log.sync_counter();
        let durability = Arc::new(Durability::default());
        let writer = Writer::start(
            &path,
            conn,
            log,
            lock,
            options.max_batch,
            durability.clone(),
        )?;
        Ok(Self {
            inner: Arc::new(StoreInner {
                path,
                readers: Mutex::new(Vec::new()),
                max_idle_readers: options.read_connections,
                busy_timeout: options.busy_timeout,
                durability,
                log_syncs,
                channels: tokio::sync::Mutex::new(HashMap::new()),
                writer,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

fn check_directory(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::new(
            ErrorKind::Store,
            format!(
                "open on SQLite store {}: the directory {} does not exist",
                path.display(),
                dir.display()
            ),
        ));
    }
    if path.is_dir() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "open on SQLite store {}: the path is a directory, not a database file",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// Takes the exclusive lock that keeps a second store off the file.
fn lock(path: &Path) -> Result<File> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| {
            let cause = if e.kind() == std::io::ErrorKind::PermissionDenied
                || e.raw_os_error() == Some(30)
            {
                "the directory is read-only or not writable (SQLite needs to create its \
                 -wal and -shm files next to the database)"
                    .to_owned()
            } else {
                format!("cannot create the lock file {}", lock_path.display())
            };
            Error::store(
                format!("open on SQLite store {}: {cause}", path.display()),
                e,
            )
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::new(
            ErrorKind::Store,
            format!(
                "open on SQLite store {}: the database is already open in another SqliteStore \
                 (in this or another process, which holds {})",
                path.display(),
                lock_path.display()
            ),
        )),
        Err(TryLockError::Error(e)) => Err(Error::store(
            format!(
                "open on SQLite store {}: cannot lock {}",
                path.display(),
                lock_path.display()
            ),
            e,
        )),
    }
}

fn configure_writer(conn: &Connection, path: &Path, options: &SqliteOptions) -> Result<()> {
    let fail = |e| db_error(path, "open", e);
    conn.busy_timeout(options.busy_timeout).map_err(fail)?;
    if conn.is_readonly("main").map_err(fail)? {
        return Err(Error::new(
            ErrorKind::Store,
            format!(
                "open on SQLite store {}: the file is read-only (check its permissions and \
                 its file system)",
                path.display()
            ),
        ));
    }
    schema::prepare(conn, path)?;
    // NORMAL in WAL mode leaves out only the log's sync at each commit, which the writer
    // makes itself with `Synchronous::Full` (see `log_file`); checkpoints sync as before.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(fail)?;
    // 32 MiB of page cache for the writer; a WAL file over 64 MiB is truncated after a
    // checkpoint so a burst does not leave a huge log behind. Checkpoints are the writer's
    // (`LogFile::maintain`, every `checkpoint_pages`).
    conn.pragma_update(None, "cache_size", -32_768)
        .map_err(fail)?;
    conn.pragma_update(None, "journal_size_limit", LOG_SIZE_LIMIT)
        .map_err(fail)?;
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(fail)?;
    if let Some(bytes) = options.max_size {
        let page: i64 = conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .map_err(fail)?;
        let pages = (i64::try_from(bytes).unwrap_or(i64::MAX) / page).max(1);
        conn.pragma_update(None, "max_page_count", pages)
            .map_err(fail)?;
    }
    stable_statements(conn).map_err(fail)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// `journal_size_limit`: the largest log SQLite keeps after a checkpoint, and the most the
/// writer grows it to ahead of SQLite.
const LOG_SIZE_LIMIT: u64 = 64 << 20;

/// Turns on the query planner stability guarantee. Without it SQLite re-prepares a cached
/// statement whenever a newly bound value might give it a better plan — with the partial
/// index `messages_claimable`, every call of the claim and expired-lease statements (the
/// plan never changes: `chan = ?1` and the state are always equalities on that index).
pub(crate) fn stable_statements(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

impl StoreInner {
    /// Runs a read-only query on a pooled read connection, off the async threads.
    pub(crate) async fn query<T, F>(self: &Arc<Self>, action: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = this.reader()?;
            let out = read_transaction(&conn, &this.durability, f)
                .map_err(|e| db_error(&this.path, action, e));
            this.give_back(conn);
            out
        })
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("{action} on SQLite store {}: {e}", self.path.display()),
            )
        })?
    }

    /// A pooled read connection (a new one when none is idle).
    fn reader(&self) -> Result<Connection> {
        if let Some(conn) = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(conn);
        }
        let fail = |e| db_error(&self.path, "open a read connection", e);
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(fail)?;
        conn.busy_timeout(self.busy_timeout).map_err(fail)?;
        stable_statements(&conn).map_err(fail)?;
        conn.set_prepared_statement_cache_capacity(16);
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle_readers {
            idle.push(conn);
        }
    }
}

/// Runs `f` in one read transaction once everything its snapshot holds is on the disk:
/// it sees only commits that are durable.
fn read_transaction<T>(
    conn: &Connection,
    durability: &Durability,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.execute_batch("BEGIN")?;
    let out = (|| {
        // The first read of a transaction fixes its snapshot of the log.
        conn.query_row("PRAGMA schema_version", [], |_| Ok(()))?;
        durability.wait_for_snapshot().map_err(|cause| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
                Some(cause),
            )
        })?;
        f(conn)
    })();
    // A read transaction has nothing to keep; ending it releases the snapshot.
    let end = conn.execute_batch("ROLLBACK");
    let out = out?;
    end?;
    Ok(out)
}

#[async_trait]
impl Store for SqliteStore {
    async fn open_channel(&self, spec: &ChannelSpec) -> Result<ChannelStorage> {
        let claims = spec.claims.is_some();
        let scope = spec.claim_scope;
        let capabilities = |claims: bool, scope: ClaimScope| match (claims, scope) {
            (false, _) => "without claims",
            (true, ClaimScope::Shared) => "with shared claims",
            (true, ClaimScope::PerRecipient) => "with claims per recipient",
        };
        let mut channels = self.inner.channels.lock().await;
        let shared = match channels.get(&spec.id) {
            Some(shared)
                if shared.policy.is_some() != claims || (claims && shared.scope != scope) =>
            {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "channel '{}' in SQLite store {} is open {}, and cannot be opened {}",
                        spec.id,
                        self.inner.path.display(),
                        capabilities(shared.policy.is_some(), shared.scope),
                        capabilities(claims, scope)
                    ),
                ));
            }
            Some(shared) => shared.clone(),
            None => {
                let name = spec.id.clone();
                let path = self.inner.path.clone();
                let row = self
                    .inner
                    .writer
                    .call("open channel", move |txn| {
                        let row = ops::open_channel(txn.conn, &name, claims, scope)?;
                        if row.claims != claims || (claims && row.scope != scope) {
                            return Ok(Err(Error::new(
                                ErrorKind::InvalidArgument,
                                format!(
                                    "channel '{name}' in SQLite store {} was created {} and \
                                     cannot be opened {} (kinds with other claim capabilities)",
                                    path.display(),
                                    capabilities(row.claims, row.scope),
                                    capabilities(claims, scope)
                                ),
                            )));
                        }
                        Ok(Ok(row))
                    })
                    .await?;
                let shared = Arc::new(ChanShared::new(&row, spec));
                channels.insert(spec.id.clone(), shared.clone());
                shared
            }
        };
        let channel = Arc::new(SqliteChannel {
            store: self.inner.clone(),
            shared,
        });
        Ok(ChannelStorage {
            claims: claims.then(|| channel.clone() as Arc<dyn ClaimQueue>),
            log: channel,
        })
    }

    fn describe(&self) -> String {
        format!("sqlite:{}", self.inner.path.display())
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;
    use sssn::message::{ChannelMessage, Content};
    use sssn::policy::ClaimPolicy;
    use sssn::store::ChannelSpec;

    use super::*;

    /// How often the writer's cached copy of `sql` was re-prepared since it was compiled.
    async fn reprepares(store: &SqliteStore, sql: &'static str) -> i32 {
        store
            .inner
            .writer
            .call("test", move |txn| {
                Ok(Ok(txn
                    .conn
                    .prepare_cached(sql)?
                    .get_status(StatementStatus::RePrepare)))
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn cached_claim_statements_are_not_recompiled() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("q.db")).unwrap();
        let spec = ChannelSpec::with_claims("q", ClaimPolicy::default());
        let storage = store.open_channel(&spec).await.unwrap();
        let queue = storage.claims.unwrap();
        let calls = 30;
        let messages = (0..calls)
            .map(|i| ChannelMessage::new("w", Content::data(&i).unwrap()))
            .collect();
        storage.log.append(messages).await.unwrap();
        for i in 0..calls {
            assert_eq!(queue.claim("c", 1).await.unwrap().len(), 1, "claim {i}");
            // The expired-lease query, with a new time bound each call (as `maintain`).
            let chan = 1_i64;
            store
                .inner
                .writer
                .call("test", move |txn| {
                    let mut stmt = txn.conn.prepare_cached(ops::EXPIRED_SQL)?;
                    let n = stmt.query_map((chan, i), |_| Ok(()))?.count();
                    Ok(Ok(n))
                })
                .await
                .unwrap();
        }
        assert_eq!(
            reprepares(&store, ops::CLAIM_SQL).await,
            0,
            "claim statement"
        );
        assert_eq!(
            reprepares(&store, ops::EXPIRED_SQL).await,
            0,
            "expired-lease query"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn empty_claims_do_not_wait_for_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("q.db")).unwrap();
        let spec = ChannelSpec::with_claims("q", ClaimPolicy::default());
        let storage = store.open_channel(&spec).await.unwrap();
        let queue = storage.claims.unwrap();
        assert!(
            queue.claim("c", 10).await.unwrap().is_empty(),
            "a new queue"
        );
        let message = ChannelMessage::new("w", Content::data(&1).unwrap());
        storage.log.append(vec![message]).await.unwrap();
        assert_eq!(queue.claim("c", 10).await.unwrap().len(), 1);
        // Nothing ready, one message in flight under a long lease. Now keep the writer
        // thread busy for a while: an empty claim must not wait for it.
        let (busy_tx, busy_rx) = tokio::sync::oneshot::channel();
        let mut busy_tx = Some(busy_tx);
        let writer = store.clone();
        let busy = tokio::spawn(async move {
            writer
                .inner
                .writer
                .call("busy", move |_| {
                    if let Some(tx) = busy_tx.take() {
                        let _ = tx.send(());
                    }
                    std::thread::sleep(std::time::Duration::from_secs(2));
                    Ok(Ok(()))
                })
                .await
        });
        busy_rx.await.unwrap();
        let t = std::time::Instant::now();
        assert!(queue.claim("c2", 10).await.unwrap().is_empty());
        assert!(
            t.elapsed() < std::time::Duration::from_secs(1),
            "the empty claim waited {:?} for the writer",
            t.elapsed()
        );
        busy.await.unwrap().unwrap();
        // A write makes the next claim go to the database again.
        let message = ChannelMessage::new("w", Content::data(&2).unwrap());
        storage.log.append(vec![message]).await.unwrap();
        assert_eq!(queue.claim("c2", 10).await.unwrap().len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readers_wait_for_a_pending_flush() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("q.db")).unwrap();
        let spec = ChannelSpec::log("log");
        let storage = store.open_channel(&spec).await.unwrap();
        let message = ChannelMessage::new("w", Content::data(&1).unwrap());
        storage.log.append(vec![message]).await.unwrap();
        // As the writer does just before a `COMMIT` the flusher has not synced yet.
        let pending = store.inner.durability.take_number();
        let log = storage.log.clone();
        let read = tokio::spawn(async move { log.range(0, 10).await });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            !read.is_finished(),
            "a read answered before what its snapshot holds was durable"
        );
        store.inner.durability.durable_up_to(pending);
        assert_eq!(read.await.unwrap().unwrap().len(), 1);
    }

    #[test]
    fn the_first_read_fixes_the_snapshot() {
        // What `read_transaction` relies on: after `BEGIN` and one read, later commits of
        // another connection stay invisible to the transaction.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1);",
            )
            .unwrap();
        let reader = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let durability = Durability::default();
        let count = read_transaction(&reader, &durability, |conn| {
            writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
            conn.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
        })
        .unwrap();
        assert_eq!(count, 1);
        let after: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(after, 2, "the transaction ended");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_flushes_each_commit_and_normal_does_not() {
        let dir = tempfile::tempdir().unwrap();
        for (sync, name) in [
            (Synchronous::Full, "full.db"),
            (Synchronous::Normal, "normal.db"),
        ] {
            let store = SqliteOptions::new()
                .synchronous(sync)
                .open(dir.path().join(name))
                .unwrap();
            let storage = store.open_channel(&ChannelSpec::log("log")).await.unwrap();
            let before = store
                .inner
                .log_syncs
                .load(std::sync::atomic::Ordering::Relaxed);
            for i in 0..20 {
                let message = ChannelMessage::new("w", Content::data(&i).unwrap());
                storage.log.append(vec![message]).await.unwrap();
            }
            let syncs = store
                .inner
                .log_syncs
                .load(std::sync::atomic::Ordering::Relaxed)
                - before;
            match sync {
                // One flush per commit (one write at a time here), plus any growth.
                Synchronous::Full => assert!((20..=22).contains(&syncs), "{syncs} syncs"),
                Synchronous::Normal => assert_eq!(syncs, 0),
            }
        }
    }
}

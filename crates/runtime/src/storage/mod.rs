//! An actor's own SQLite database: opening and creating it, the turn's transaction, the
//! key–value API, and the guard that keeps actor SQL away from what the runtime owns.

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use rusqlite::config::DbConfig;
use rusqlite::hooks::AuthContext;
use rusqlite::types::{FromSql, ToSql};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::durability::Durability;
use crate::error::is_corruption;
use crate::id::ActorId;

mod checkpoint;
mod guard;
mod idle;
#[cfg(feature = "replicated")]
mod replicated;

#[cfg(feature = "replicated")]
pub(crate) use replicated::{Cursor, record_position, recorded_position};

use crate::layout::sync_file_and_dir;
use guard::{authorize, internally};

/// Tables, indexes and savepoints whose names start with this belong to the runtime; actor SQL
/// that names one is refused.
///
/// ```
/// # fn demo(storage: &burrow_runtime::Storage) {
/// let refused = storage.sql().execute_batch("DROP TABLE _burrow_kv");
/// assert!(refused.is_err());
/// assert!(burrow_runtime::RESERVED_PREFIX.starts_with('_'));
/// # }
/// ```
pub const RESERVED_PREFIX: &str = "_burrow_";

/// Who the actor is, as recorded in its file when it is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub namespace: Arc<str>,
    pub id: ActorId,
    pub name: Option<Arc<str>>,
}

/// The actor's database, handed to its code during a turn.
///
/// Everything a turn does here — through [`sql`](Storage::sql) or the key–value methods — is
/// one transaction, committed before the turn's reply leaves the actor and rolled back if the
/// turn panics or aborts. Actor SQL may not touch tables named with [`RESERVED_PREFIX`], nor
/// begin, commit or roll back the turn's transaction (use [`Storage::transaction`] for nested
/// transactions and [`Context::flush`](crate::Context::flush) to commit early), nor attach
/// other databases or change the pragmas that durability rests on.
///
/// ```
/// # fn demo(storage: &burrow_runtime::Storage) -> Result<(), rusqlite::Error> {
/// let sql = storage.sql();
/// sql.execute_batch("CREATE TABLE IF NOT EXISTS notes (body TEXT NOT NULL)")?;
/// sql.execute("INSERT INTO notes (body) VALUES (?1)", ["remember the milk"])?;
/// let count: i64 = sql.query_row("SELECT count(*) FROM notes", [], |r| r.get(0))?;
/// assert!(count >= 1);
/// assert!(sql.execute_batch("COMMIT").is_err()); // the turn owns its transaction
/// # Ok(()) }
/// ```
pub struct Storage {
    /// Shared only with a recording of the turn's changes (replicated mode), which borrows it.
    conn: Rc<Connection>,
    /// Set while the runtime itself runs SQL, which the authorizer then lets through.
    internal: Arc<AtomicBool>,
    savepoints: Cell<u32>,
    name: Option<Arc<str>>,
    created_at_ms: i64,
    #[cfg(feature = "replicated")]
    replica: replicated::Replica,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("path", &self.conn.path())
            .finish()
    }
}

/// Why opening an actor's file found no usable state in it.
#[derive(Debug)]
pub(crate) enum Unusable {
    /// The file is there but empty.
    Empty,
    /// The file is a database but records no identity (a creation that never committed).
    NoIdentity,
    /// The file records another actor's identity.
    WrongIdentity(String),
    /// SQLite says the file is not a database or is corrupt.
    Corrupt(rusqlite::Error),
}

impl Storage {
    /// Opens the actor's existing file, or says why its content cannot be used.
    pub(crate) fn open_existing(
        path: &Path,
        durability: Durability,
        identity: &Identity,
    ) -> Result<Result<Storage, Unusable>, rusqlite::Error> {
        let empty = std::fs::metadata(path)
            .map(|m| m.len() == 0)
            .unwrap_or(false);
        if empty {
            return Ok(Err(Unusable::Empty));
        }
        // No CREATE flag: a file that vanished since it was seen must not come back empty.
        let conn = match Self::connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE, durability) {
            Ok(conn) => conn,
            Err(e) if is_corruption(&e) => return Ok(Err(Unusable::Corrupt(e))),
            Err(e) => return Err(e),
        };
        let recorded: Result<Vec<(String, Option<String>)>, rusqlite::Error> = conn
            .prepare(
                "SELECT key, CAST(value AS TEXT) FROM _burrow_meta
                 WHERE key IN ('namespace', 'id', 'name', 'created_at_ms')",
            )
            .and_then(|mut stmt| {
                stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect()
            });
        let recorded = match recorded {
            Ok(rows) => rows,
            Err(e) if is_corruption(&e) => return Ok(Err(Unusable::Corrupt(e))),
            Err(rusqlite::Error::SqliteFailure(_, Some(msg))) if msg.contains("no such table") => {
                return Ok(Err(Unusable::NoIdentity));
            }
            Err(e) => return Err(e),
        };
        let get = |key: &str| {
            recorded
                .iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| v.clone())
        };
        let (Some(namespace), Some(id)) = (get("namespace"), get("id")) else {
            return Ok(Err(Unusable::NoIdentity));
        };
        if *namespace != *identity.namespace || id != identity.id.to_string() {
            return Ok(Err(Unusable::WrongIdentity(format!(
                "the file records actor {id} of namespace {namespace:?}"
            ))));
        }
        let name = get("name").map(Arc::from).or_else(|| identity.name.clone());
        let created_at_ms = get("created_at_ms")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        Ok(Ok(Storage::guarded(conn, name, created_at_ms)?))
    }

    /// Creates the actor's file (which must not exist) and records its identity in it.
    pub(crate) fn create(
        path: &Path,
        durability: Durability,
        identity: &Identity,
        created_at_ms: i64,
    ) -> Result<Storage, rusqlite::Error> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        let conn = Self::connect(path, flags, durability)?;
        // Switching a new file to WAL runs a rollback-journal transaction (kept in memory here:
        // a file that never committed its identity is treated as unusable anyway, so a journal
        // file would protect nothing and cost a create and an unlink), and the first write
        // to a new WAL syncs its header and its directory: with synchronous=OFF neither costs
        // an fsync. A process crash cannot undo what reached the page cache, so process mode
        // creates the whole file that way; machine mode makes it durable explicitly below.
        conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA journal_mode = MEMORY")?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(failure(
                rusqlite::ffi::SQLITE_ERROR,
                format!(
                    "SQLite refused WAL mode for {} (journal mode is {mode})",
                    path.display()
                ),
            ));
        }
        if durability == Durability::Machine {
            // SQLite drops a WAL whose database file is empty, so the header that says "WAL"
            // must reach the disk before the first commit is acknowledged; the first commit
            // then syncs the WAL and the directory.
            sync_file_and_dir(path).map_err(|e| {
                failure(
                    rusqlite::ffi::SQLITE_IOERR,
                    format!("fsync {}: {e}", path.display()),
                )
            })?;
            Self::set_synchronous(&conn, durability)?;
        }
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE _burrow_meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
             CREATE TABLE _burrow_kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
             CREATE TABLE _burrow_alarms (name TEXT PRIMARY KEY, due_ms INTEGER NOT NULL) WITHOUT ROWID;",
        )?;
        conn.execute(
            "INSERT INTO _burrow_meta (key, value) VALUES
               ('namespace', ?1), ('id', ?2), ('name', ?3), ('created_at_ms', ?4),
               ('format', 1)",
            params![
                &*identity.namespace,
                identity.id.to_string(),
                identity.name.as_deref(),
                created_at_ms
            ],
        )?;
        conn.execute_batch("COMMIT")?;
        Self::set_synchronous(&conn, durability)?;
        Storage::guarded(conn, identity.name.clone(), created_at_ms)
    }

    pub(crate) fn connect(
        path: &Path,
        flags: OpenFlags,
        durability: Durability,
    ) -> Result<Connection, rusqlite::Error> {
        // "unix-none" takes no POSIX locks. The default unix VFS keeps every open file in one
        // global list that each open walks (to reconcile POSIX lock semantics), which makes
        // opening quadratic in the number of resident actors: at 9,000 open files it was most
        // of an activation's time. Exclusion comes from elsewhere: the data directory's LOCK
        // keeps other runtimes out, and a runtime opens each actor's file once.
        let conn = Connection::open_with_flags_and_vfs(
            path,
            flags | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            c"unix-none",
        )?;
        // Closing without a checkpoint keeps eviction cheap; the WAL is replayed on next open.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        // Exclusive locking keeps the WAL index in memory: no -shm file, one descriptor less,
        // no locking calls per transaction. Set before the first read, or it does not apply.
        conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE")?;
        Self::set_synchronous(&conn, durability)?;
        Ok(conn)
    }

    fn set_synchronous(conn: &Connection, durability: Durability) -> Result<(), rusqlite::Error> {
        conn.execute_batch(durability.synchronous_pragma())
    }

    fn guarded(
        mut conn: Connection,
        name: Option<Arc<str>>,
        created_at_ms: i64,
    ) -> Result<Storage, rusqlite::Error> {
        let internal = Arc::new(AtomicBool::new(false));
        let flag = internal.clone();
        conn.authorizer(Some(move |ctx: AuthContext<'_>| authorize(&flag, ctx)))?;
        Ok(Storage {
            conn: Rc::new(conn),
            internal,
            savepoints: Cell::new(0),
            name,
            created_at_ms,
            #[cfg(feature = "replicated")]
            replica: replicated::Replica::default(),
        })
    }

    /// The actor's name as recorded at creation (`None` for actors addressed by a unique id).
    pub(crate) fn recorded_name(&self) -> Option<Arc<str>> {
        self.name.clone()
    }

    /// When the file was created, as recorded in it.
    pub(crate) fn created_at_ms(&self) -> i64 {
        self.created_at_ms
    }

    /// The connection, for the actor's own SQL.
    ///
    /// The actor may create and use any tables whose names do not start with
    /// [`RESERVED_PREFIX`]. Statements that would break the turn's atomicity or durability are
    /// refused with an authorization error.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use burrow_runtime::{Abort, Actor, ActorId, Context, Handler, Message, Options, Runtime};
    /// # struct A; impl Actor for A {}
    /// # struct M; impl Message for M { type Reply = (); }
    /// # impl Handler<M> for A {
    /// # async fn handle(&mut self, ctx: &mut Context<Self>, _: M) -> Result<(), Abort> {
    /// let sql = ctx.storage().sql();
    /// sql.execute_batch("CREATE TABLE IF NOT EXISTS notes (body TEXT NOT NULL)")?;
    /// sql.execute("INSERT INTO notes (body) VALUES (?1)", ["remember the milk"])?;
    /// let n: i64 = sql.query_row("SELECT count(*) FROM notes", [], |r| r.get(0))?;
    /// assert_eq!(n, 1);
    /// // What would break the turn's atomicity is refused.
    /// assert!(sql.execute_batch("COMMIT").is_err());
    /// # Ok(()) } }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// # runtime.namespace("a", |_| A)?.get_by_name("x").call(M).await?;
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn sql(&self) -> &Connection {
        &self.conn
    }

    fn run_internal<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        internally(&self.internal, || f(&self.conn))
    }

    /// Runs one of the runtime's own statements, prepared once per connection: the turn's
    /// `BEGIN`/`COMMIT` and savepoints run on every call, and parsing them each time showed.
    fn control(&self, sql: &str) -> Result<(), rusqlite::Error> {
        self.run_internal(|c| c.prepare_cached(sql)?.execute([]).map(drop))
    }

    /// Begins the turn's transaction (and, in replicated mode, the recording of its changes).
    pub(crate) fn begin(&self) -> Result<(), rusqlite::Error> {
        self.control("BEGIN")?;
        #[cfg(feature = "replicated")]
        if let Err(e) = self.start_recording() {
            let _ = self.control("ROLLBACK");
            return Err(e);
        }
        Ok(())
    }

    pub(crate) fn commit(&self) -> Result<(), rusqlite::Error> {
        debug_assert_eq!(
            self.savepoints.get(),
            0,
            "a turn commits outside savepoints"
        );
        #[cfg(feature = "replicated")]
        self.stop_recording();
        self.control("COMMIT")
    }

    /// Rolls the turn's transaction back; a no-op if none is open.
    pub(crate) fn rollback(&self) -> Result<(), rusqlite::Error> {
        self.savepoints.set(0);
        #[cfg(feature = "replicated")]
        self.stop_recording();
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.control("ROLLBACK")
    }

    /// Opens the savepoint that lets one turn of a group commit roll back alone.
    pub(crate) fn begin_grouped_turn(&self) -> Result<(), rusqlite::Error> {
        debug_assert!(
            !self.conn.is_autocommit(),
            "a grouped turn runs inside a batch"
        );
        self.control("SAVEPOINT _burrow_turn")
    }

    /// Keeps a grouped turn's writes in the batch.
    pub(crate) fn keep_grouped_turn(&self) -> Result<(), rusqlite::Error> {
        debug_assert_eq!(self.savepoints.get(), 0, "the handler's savepoints ended");
        self.control("RELEASE _burrow_turn")
    }

    /// Undoes a failed grouped turn's writes (its own savepoints too, even ones a panic left
    /// open), keeping the turns before it.
    pub(crate) fn undo_grouped_turn(&self) -> Result<(), rusqlite::Error> {
        self.savepoints.set(0);
        self.control("ROLLBACK TO _burrow_turn")?;
        self.control("RELEASE _burrow_turn")
    }

    /// The value stored under `key`, if any, as any type SQLite can read it into: integers,
    /// floats, text, bytes (`Vec<u8>`), or a type of yours that implements
    /// [`FromSql`](rusqlite::types::FromSql) (for instance by decoding with serde).
    ///
    /// A stored value of another type is an error, never a silent default.
    ///
    /// ```
    /// # fn demo(storage: &burrow_runtime::Storage) -> Result<(), rusqlite::Error> {
    /// storage.put("visits", &41_i64)?;
    /// let visits: i64 = storage.get("visits")?.unwrap_or(0);
    /// storage.put("visits", &(visits + 1))?;
    /// assert_eq!(storage.get::<i64>("visits")?, Some(42));
    /// assert_eq!(storage.get::<String>("never set")?, None);
    /// # Ok(()) }
    /// ```
    pub fn get<V: FromSql>(&self, key: &str) -> Result<Option<V>, rusqlite::Error> {
        self.run_internal(|c| {
            c.prepare_cached("SELECT value FROM _burrow_kv WHERE key = ?1")?
                .query_row([key.as_bytes()], |row| row.get(0))
                .optional()
        })
    }

    /// Stores `value` under `key`, replacing what was there. Any type rusqlite can bind works
    /// (`i64`, `f64`, `&str`, `String`, byte slices and arrays, `Vec<u8>`, or a type of yours
    /// that implements [`ToSql`](rusqlite::types::ToSql)); SQL `NULL` is refused (delete the
    /// key instead).
    ///
    /// ```
    /// # fn demo(storage: &burrow_runtime::Storage) -> Result<(), rusqlite::Error> {
    /// storage.put("greeting", "hello")?;
    /// storage.put("raw", b"\x00\x01")?;
    /// assert_eq!(storage.get::<String>("greeting")?.as_deref(), Some("hello"));
    /// assert_eq!(storage.get::<Vec<u8>>("raw")?, Some(vec![0, 1]));
    /// # Ok(()) }
    /// ```
    pub fn put<V: ToSql + ?Sized>(&self, key: &str, value: &V) -> Result<(), rusqlite::Error> {
        self.run_internal(|c| {
            c.prepare_cached("INSERT OR REPLACE INTO _burrow_kv (key, value) VALUES (?1, ?2)")?
                .execute(params![key.as_bytes(), value])
                .map(drop)
        })
    }

    /// Stores several entries. Like every write of a turn, they commit together.
    ///
    /// ```
    /// # fn demo(storage: &burrow_runtime::Storage) -> Result<(), rusqlite::Error> {
    /// storage.put_many([("a", &1_i64), ("b", &2_i64)])?;
    /// assert_eq!(storage.list::<i64>("")?, vec![("a".into(), 1), ("b".into(), 2)]);
    /// # Ok(()) }
    /// ```
    pub fn put_many<'a, V: ToSql + ?Sized + 'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a str, &'a V)>,
    ) -> Result<(), rusqlite::Error> {
        entries.into_iter().try_for_each(|(k, v)| self.put(k, v))
    }

    /// Deletes `key`; returns whether it was there.
    ///
    /// ```
    /// # fn demo(storage: &burrow_runtime::Storage) -> Result<(), rusqlite::Error> {
    /// storage.put("k", &1_i64)?;
    /// assert!(storage.delete("k")?);
    /// assert!(!storage.delete("k")?);
    /// # Ok(()) }
    /// ```
    pub fn delete(&self, key: &str) -> Result<bool, rusqlite::Error> {
        self.run_internal(|c| {
            c.prepare_cached("DELETE FROM _burrow_kv WHERE key = ?1")?
                .execute([key.as_bytes()])
                .map(|n| n > 0)
        })
    }

    /// Every entry whose key starts with `prefix`, in key order (byte-wise), each value read as
    /// `V` (see [`get`](Storage::get)).
    ///
    /// ```
    /// # fn demo(storage: &burrow_runtime::Storage) -> Result<(), rusqlite::Error> {
    /// storage.put("user/1", "ada")?;
    /// storage.put("user/2", "bob")?;
    /// storage.put("other", "x")?;
    /// let users: Vec<(String, String)> = storage.list("user/")?;
    /// assert_eq!(users, [("user/1".into(), "ada".into()), ("user/2".into(), "bob".into())]);
    /// # Ok(()) }
    /// ```
    pub fn list<V: FromSql>(&self, prefix: &str) -> Result<Vec<(String, V)>, rusqlite::Error> {
        fn rows<V: FromSql>(
            stmt: &mut rusqlite::CachedStatement<'_>,
            params: impl rusqlite::Params,
        ) -> Result<Vec<(String, V)>, rusqlite::Error> {
            stmt.query_map(params, |row| {
                let key: Vec<u8> = row.get(0)?;
                // Keys only ever enter as &str.
                Ok((String::from_utf8_lossy(&key).into_owned(), row.get(1)?))
            })?
            .collect()
        }
        self.run_internal(|c| match prefix_upper_bound(prefix.as_bytes()) {
            Some(upper) => rows(
                &mut c.prepare_cached(
                    "SELECT key, value FROM _burrow_kv WHERE key >= ?1 AND key < ?2 ORDER BY key",
                )?,
                params![prefix.as_bytes(), upper],
            ),
            None => rows(
                &mut c.prepare_cached(
                    "SELECT key, value FROM _burrow_kv WHERE key >= ?1 ORDER BY key",
                )?,
                [prefix.as_bytes()],
            ),
        })
    }

    pub(crate) fn set_alarm_row(&self, name: &str, due_ms: i64) -> Result<(), rusqlite::Error> {
        self.run_internal(|c| {
            c.prepare_cached(
                "INSERT OR REPLACE INTO _burrow_alarms (name, due_ms) VALUES (?1, ?2)",
            )?
            .execute(params![name, due_ms])
            .map(drop)
        })
    }

    pub(crate) fn delete_alarm_row(&self, name: &str) -> Result<bool, rusqlite::Error> {
        self.run_internal(|c| {
            c.prepare_cached("DELETE FROM _burrow_alarms WHERE name = ?1")?
                .execute([name])
                .map(|n| n > 0)
        })
    }

    pub(crate) fn delete_alarm_row_if_due(
        &self,
        name: &str,
        due_ms: i64,
    ) -> Result<bool, rusqlite::Error> {
        self.run_internal(|c| {
            c.prepare_cached("DELETE FROM _burrow_alarms WHERE name = ?1 AND due_ms = ?2")?
                .execute(params![name, due_ms])
                .map(|n| n > 0)
        })
    }

    pub(crate) fn alarm_due(&self, name: &str) -> Result<Option<i64>, rusqlite::Error> {
        self.run_internal(|c| {
            c.prepare_cached("SELECT due_ms FROM _burrow_alarms WHERE name = ?1")?
                .query_row([name], |r| r.get(0))
                .optional()
        })
    }

    pub(crate) fn alarm_rows(&self) -> Result<Vec<(String, i64)>, rusqlite::Error> {
        self.run_internal(|c| {
            c.prepare_cached("SELECT name, due_ms FROM _burrow_alarms ORDER BY name")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
    }

    /// Runs `f` in a nested transaction (a savepoint): if it returns an error, what it wrote is
    /// rolled back and the rest of the turn goes on. Nests to any depth.
    ///
    /// ```
    /// # fn demo(storage: &burrow_runtime::Storage) -> Result<(), rusqlite::Error> {
    /// storage.put("kept", b"1")?;
    /// let attempt: Result<(), rusqlite::Error> = storage.transaction(|s| {
    ///     s.put("dropped", b"2")?;
    ///     Err(rusqlite::Error::QueryReturnedNoRows) // any error rolls the savepoint back
    /// });
    /// assert!(attempt.is_err());
    /// assert_eq!(storage.get::<Vec<u8>>("dropped")?, None);
    /// # Ok(()) }
    /// ```
    pub fn transaction<T, E>(&self, f: impl FnOnce(&Storage) -> Result<T, E>) -> Result<T, E>
    where
        E: From<rusqlite::Error>,
    {
        let depth = self.savepoints.get();
        let name = format!("{RESERVED_PREFIX}sp{depth}");
        self.run_internal(|c| c.execute_batch(&format!("SAVEPOINT {name}")))?;
        self.savepoints.set(depth + 1);
        let result = f(self);
        debug_assert_eq!(
            self.savepoints.get(),
            depth + 1,
            "nested transactions end in the order they began"
        );
        self.savepoints.set(depth);
        match result {
            Ok(value) => {
                self.run_internal(|c| c.execute_batch(&format!("RELEASE {name}")))?;
                Ok(value)
            }
            Err(e) => {
                self.run_internal(|c| {
                    c.execute_batch(&format!("ROLLBACK TO {name}; RELEASE {name}"))
                })?;
                Err(e)
            }
        }
    }
}

/// The smallest byte string greater than every string that starts with `prefix`, or `None`
/// when there is none (empty prefix, or all 0xFF).
fn prefix_upper_bound(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut upper = prefix.to_vec();
    while let Some(last) = upper.pop() {
        if last < 0xFF {
            upper.push(last + 1);
            return Some(upper);
        }
    }
    None
}

/// An error of SQLite's shape for failures found outside SQLite, so one classification applies.
fn failure(code: std::ffi::c_int, message: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(message))
}

#[cfg(test)]
mod tests {
    use super::prefix_upper_bound;

    #[test]
    fn upper_bounds_of_prefixes() {
        assert_eq!(prefix_upper_bound(b""), None);
        assert_eq!(prefix_upper_bound(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_upper_bound(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_upper_bound(b"\xff\xff"), None);
    }
}

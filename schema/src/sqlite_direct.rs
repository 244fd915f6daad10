//! The store's writer connection on SQLite, driven through SQLite's C API on the caller's
//! thread, for lifecycle commands (`Store::apply`).
//!
//! sqlx runs every call on a SQLite connection on that connection's worker thread, so each
//! call is a hand-off to that thread and back, and on this project's machines a hand-off costs
//! more than SQLite's own work for a command (BENCHMARKS.md, "Why the misses"). The writer is
//! a connection of our own instead ([`Owned`]): a command's read, its write transaction and
//! its rollback run where the command runs, with no hand-off at all. (Locking a sqlx
//! connection's handle for each command, one hand-off instead of none, was tried first and
//! hung now and then: the worker's re-lock after `lock_handle` waited forever.)
//!
//! Values are bound as sqlx binds them (`sea-query-sqlx`'s mapping of sea-query values onto
//! sqlx's SQLite encoders): the rows are the same whichever path wrote them, and the tests
//! compare them column by column.

use std::borrow::Cow;
use std::ffi::{CStr, CString, c_int};
use std::marker::PhantomData;
use std::path::Path;
use std::ptr::NonNull;

use chrono::{DateTime, SecondsFormat, Utc};
use libsqlite3_sys as ffi;
use sea_orm::sea_query::{OptionEnum, Value};

/// What SQLite said when a call failed: its message and its extended result code.
#[derive(Debug)]
pub(crate) struct Failure {
    pub code: c_int,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (SQLite result code {})", self.message, self.code)
    }
}

pub(crate) type Result<T> = std::result::Result<T, Failure>;

/// A SQLite connection of our own, closed when dropped. Opened like the pool's connections
/// (read-write, no mutex of SQLite's own: it is used by one caller at a time, behind the
/// store's lock, and may move between threads).
#[derive(Debug)]
pub(crate) struct Owned {
    db: NonNull<ffi::sqlite3>,
}

// SAFETY: opened with SQLITE_OPEN_NOMUTEX (SQLite's multi-thread mode), a connection may be
// used from any thread as long as no two use it at once; `Owned` is only reached through
// `&mut` (the store keeps it behind a mutex).
unsafe impl Send for Owned {}

impl Owned {
    /// Opens the database a sqlx connection with these options opens (`open_as`), with no
    /// busy timeout (the caller waits for the write lock itself, see `Store::apply_on_writer`),
    /// and runs each of `setup` (pragmas, temporary objects) on the new connection.
    pub fn open(file: &Path, query: &[(String, String)], setup: &[&str]) -> Result<Owned> {
        let (name, flags) = open_as(file, query)?;
        let mut db = std::ptr::null_mut();
        // SAFETY: `name` is a NUL-terminated path; `db` receives the handle, which SQLite
        // allocates even when the open fails (then closed by `Owned`'s drop below).
        let rc = unsafe { ffi::sqlite3_open_v2(name.as_ptr(), &mut db, flags, std::ptr::null()) };
        let Some(db) = NonNull::new(db) else {
            return Err(Failure {
                code: ffi::SQLITE_NOMEM,
                message: "SQLite could not allocate a connection".into(),
            });
        };
        let owned = Owned { db };
        if rc != ffi::SQLITE_OK {
            return Err(owned.conn().failure(rc));
        }
        // SAFETY: the handle is open and ours.
        unsafe {
            ffi::sqlite3_extended_result_codes(db.as_ptr(), 1);
        }
        for sql in setup {
            owned.conn().exec(sql)?;
        }
        Ok(owned)
    }

    /// The handle, for calls outside this module (the query planner setting).
    pub fn handle(&self) -> NonNull<ffi::sqlite3> {
        self.db
    }

    /// The connection, for one synchronous stretch of calls.
    pub fn conn(&self) -> Conn<'_> {
        Conn {
            db: self.db,
            _owned: PhantomData,
        }
    }
}

/// The name and flags sqlx's `establish` opens a connection with, for a pool whose options
/// have this file and this URL query (`mode` rwc / rw / ro / memory, `cache` shared /
/// private; `Store`'s `sqlite_url_query`): `sqlite::memory:` is a shared-cache in-memory
/// database that the writer must reach too. A URL with `immutable` or `vfs` is refused: sqlx
/// turns those into a `file:` URI, which the store's writer does not build.
pub(crate) fn open_as(file: &Path, query: &[(String, String)]) -> Result<(CString, c_int)> {
    let misuse = |message: String| Failure {
        code: ffi::SQLITE_MISUSE,
        message,
    };
    let get = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    for key in ["immutable", "vfs"] {
        if get(key).is_some() {
            return Err(misuse(format!(
                "rectify cannot write to a SQLite database opened with `{key}`; remove it from the database URL"
            )));
        }
    }
    let mut flags = ffi::SQLITE_OPEN_URI | ffi::SQLITE_OPEN_NOMUTEX;
    flags |= match get("mode") {
        Some("ro") => ffi::SQLITE_OPEN_READONLY,
        Some("rw") => ffi::SQLITE_OPEN_READWRITE,
        Some("memory") => {
            ffi::SQLITE_OPEN_MEMORY | ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE
        }
        _ => ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE,
    };
    flags |= if get("cache") == Some("shared") {
        ffi::SQLITE_OPEN_SHAREDCACHE
    } else {
        ffi::SQLITE_OPEN_PRIVATECACHE
    };
    let name = file
        .to_str()
        .ok_or_else(|| misuse(format!("the file name {} is not UTF-8", file.display())))?;
    let name = CString::new(name).map_err(|_| misuse(format!("NUL in {name:?}")))?;
    Ok((name, flags))
}

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: every statement of ours is finalized when its `Stmt` drops, which borrows
        // the connection, so none is left. An open transaction is rolled back.
        unsafe { ffi::sqlite3_close(self.db.as_ptr()) };
    }
}

/// A view of an [`Owned`] connection for a stretch of calls. Not `Send`: it never lives across
/// an await.
pub(crate) struct Conn<'h> {
    db: NonNull<ffi::sqlite3>,
    _owned: PhantomData<&'h Owned>,
}

impl<'h> Conn<'h> {
    /// Runs `sql`, which may hold several statements, without values.
    pub fn exec(&self, sql: &str) -> Result<()> {
        let sql = CString::new(sql).map_err(|_| Failure {
            code: ffi::SQLITE_MISUSE,
            message: "NUL in SQL".into(),
        })?;
        // SAFETY: the handle is open and ours; no callback, no error string asked for.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.db.as_ptr(),
                sql.as_ptr(),
                None,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(self.failure(rc))
        }
    }

    fn failure(&self, code: c_int) -> Failure {
        // SAFETY: the handle is open and ours; the message is copied before any other call.
        let message = unsafe {
            let m = ffi::sqlite3_errmsg(self.db.as_ptr());
            if m.is_null() {
                String::new()
            } else {
                CStr::from_ptr(m).to_string_lossy().into_owned()
            }
        };
        // The extended code (e.g. SQLITE_BUSY_SNAPSHOT for SQLITE_BUSY) when it is one of
        // `code`'s; SQLite keeps it for the last call that failed.
        // SAFETY: as above.
        let extended = unsafe { ffi::sqlite3_extended_errcode(self.db.as_ptr()) };
        Failure {
            code: if extended & 0xff == code {
                extended
            } else {
                code
            },
            message,
        }
    }

    /// Prepares one statement. SQL holding more than one is refused: each statement of a
    /// command is bound with its own values.
    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>> {
        let len = c_int::try_from(sql.len()).map_err(|_| Failure {
            code: ffi::SQLITE_TOOBIG,
            message: "statement too long".into(),
        })?;
        let mut st = std::ptr::null_mut();
        let mut tail = std::ptr::null();
        // SAFETY: `sql` outlives the call (SQLite copies what it keeps); the out-pointers are
        // valid for writes.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                self.db.as_ptr(),
                sql.as_ptr().cast(),
                len,
                &mut st,
                &mut tail,
            )
        };
        if rc != ffi::SQLITE_OK {
            if !st.is_null() {
                // SAFETY: a statement SQLite gave us, finalized once.
                unsafe { ffi::sqlite3_finalize(st) };
            }
            return Err(self.failure(rc));
        }
        let Some(st) = NonNull::new(st) else {
            return Err(Failure {
                code: ffi::SQLITE_MISUSE,
                message: format!("no statement in {sql:?}"),
            });
        };
        let stmt = Stmt { st, conn: self };
        // SAFETY: `tail` points into `sql`, at or before its end.
        let used = unsafe { tail.cast::<u8>().offset_from(sql.as_ptr()) } as usize;
        if !sql[used.min(sql.len())..]
            .trim_matches(|c: char| c.is_whitespace() || c == ';')
            .is_empty()
        {
            return Err(Failure {
                code: ffi::SQLITE_MISUSE,
                message: format!("more than one statement in {sql:?}"),
            });
        }
        Ok(stmt)
    }

    /// Runs one statement with `values` to its end. The values are bound without a copy
    /// (`SQLITE_STATIC`): they outlive the statement, which is finalized before this returns.
    pub fn run(&self, sql: &str, values: &[Bound<'_>]) -> Result<()> {
        let mut st = self.prepare(sql)?;
        // SAFETY: `values` is borrowed for this whole call and `st` is finalized (dropped)
        // at its end, so SQLite never reads a value after it is gone.
        unsafe { st.bind_as(values, ffi::SQLITE_STATIC()) }?;
        while st.step()? {}
        drop(st);
        Ok(())
    }

    /// How many rows the last INSERT, UPDATE or DELETE that ended on this connection changed.
    pub fn changes(&self) -> u64 {
        // SAFETY: reads the handle's state only.
        unsafe { ffi::sqlite3_changes(self.db.as_ptr()) }.max(0) as u64
    }

    /// The first column of the first row `sql` gives (without values), as an integer; none
    /// for NULL or no row.
    pub fn one_int(&self, sql: &str) -> Result<Option<i64>> {
        let mut st = self.prepare(sql)?;
        if st.step()? { st.int(0) } else { Ok(None) }
    }

    /// Whether the last call failed because another connection holds a lock it needed
    /// (SQLITE_BUSY, or SQLITE_LOCKED in a shared cache) and left no transaction open: the
    /// same calls may be tried again.
    pub fn busy_outside_transaction(&self) -> bool {
        // SAFETY: reads the handle's state only.
        let code = unsafe { ffi::sqlite3_errcode(self.db.as_ptr()) } & 0xff;
        (code == ffi::SQLITE_BUSY || code == ffi::SQLITE_LOCKED) && !self.in_transaction()
    }

    /// Whether a transaction is open on the connection.
    pub fn in_transaction(&self) -> bool {
        // SAFETY: reads the handle's state only.
        unsafe { ffi::sqlite3_get_autocommit(self.db.as_ptr()) == 0 }
    }
}

/// A prepared statement, finalized when dropped.
pub(crate) struct Stmt<'c> {
    st: NonNull<ffi::sqlite3_stmt>,
    conn: &'c Conn<'c>,
}

impl Drop for Stmt<'_> {
    fn drop(&mut self) {
        // SAFETY: prepared by us, finalized once, before its connection can be released.
        unsafe { ffi::sqlite3_finalize(self.st.as_ptr()) };
    }
}

impl Stmt<'_> {
    /// Binds `values`, text and blobs copied by SQLite (`SQLITE_TRANSIENT`).
    pub fn bind(&mut self, values: &[Bound<'_>]) -> Result<()> {
        // SAFETY: SQLite copies what it keeps.
        unsafe { self.bind_as(values, ffi::SQLITE_TRANSIENT()) }
    }

    /// Binds `values` with `destructor` for text and blobs.
    ///
    /// # Safety
    /// With `SQLITE_STATIC` the caller keeps `values` alive until the statement is finalized
    /// or bound again.
    unsafe fn bind_as(
        &mut self,
        values: &[Bound<'_>],
        destructor: ffi::sqlite3_destructor_type,
    ) -> Result<()> {
        let st = self.st.as_ptr();
        // SAFETY: `st` is ours; what text and blobs point to lives as `destructor` says.
        let wanted = unsafe { ffi::sqlite3_bind_parameter_count(st) };
        if usize::try_from(wanted).ok() != Some(values.len()) {
            return Err(Failure {
                code: ffi::SQLITE_RANGE,
                message: format!(
                    "the statement has {wanted} parameters, {} values given",
                    values.len()
                ),
            });
        }
        for (i, v) in values.iter().enumerate() {
            let at = i as c_int + 1;
            let rc = unsafe {
                match v {
                    Bound::Null => ffi::sqlite3_bind_null(st, at),
                    Bound::Int(n) => ffi::sqlite3_bind_int64(st, at, *n),
                    Bound::Real(f) => ffi::sqlite3_bind_double(st, at, *f),
                    Bound::Text(s) => ffi::sqlite3_bind_text64(
                        st,
                        at,
                        s.as_ptr().cast(),
                        s.len() as u64,
                        destructor,
                        ffi::SQLITE_UTF8 as u8,
                    ),
                    Bound::Blob(b) => ffi::sqlite3_bind_blob64(
                        st,
                        at,
                        b.as_ptr().cast(),
                        b.len() as u64,
                        destructor,
                    ),
                }
            };
            if rc != ffi::SQLITE_OK {
                return Err(self.conn.failure(rc));
            }
        }
        Ok(())
    }

    /// Steps once: true when a row is there to read, false at the end.
    pub fn step(&mut self) -> Result<bool> {
        // SAFETY: `st` is ours and bound.
        match unsafe { ffi::sqlite3_step(self.st.as_ptr()) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            rc => Err(self.conn.failure(rc)),
        }
    }

    /// Column `i` of the current row as an integer, or none for NULL.
    pub fn int(&self, i: c_int) -> Result<Option<i64>> {
        let st = self.st.as_ptr();
        // SAFETY: a row is current (the caller stepped to it); `i` is checked by SQLite.
        match unsafe { ffi::sqlite3_column_type(st, i) } {
            ffi::SQLITE_NULL => Ok(None),
            ffi::SQLITE_INTEGER => Ok(Some(unsafe { ffi::sqlite3_column_int64(st, i) })),
            other => Err(self.mismatch(i, "an integer", other)),
        }
    }

    /// Column `i` of the current row as text, or none for NULL.
    pub fn text(&self, i: c_int) -> Result<Option<String>> {
        let st = self.st.as_ptr();
        // SAFETY: as in `int`; the text is copied before the next call on the statement.
        unsafe {
            match ffi::sqlite3_column_type(st, i) {
                ffi::SQLITE_NULL => Ok(None),
                ffi::SQLITE_TEXT => {
                    let p = ffi::sqlite3_column_text(st, i);
                    let n = ffi::sqlite3_column_bytes(st, i);
                    let bytes = if p.is_null() {
                        &[][..]
                    } else {
                        std::slice::from_raw_parts(p, n as usize)
                    };
                    String::from_utf8(bytes.to_vec())
                        .map(Some)
                        .map_err(|_| self.mismatch(i, "UTF-8 text", ffi::SQLITE_TEXT))
                }
                other => Err(self.mismatch(i, "text", other)),
            }
        }
    }

    /// Column `i` as a time, read as sqlx reads a `DateTime<Utc>`: text in one of the forms
    /// sqlx accepts, or Unix seconds.
    pub fn time(&self, i: c_int) -> Result<Option<DateTime<Utc>>> {
        let st = self.st.as_ptr();
        // SAFETY: as in `int`.
        let value = match unsafe { ffi::sqlite3_column_type(st, i) } {
            ffi::SQLITE_NULL => return Ok(None),
            ffi::SQLITE_INTEGER => serde_json::Value::from(self.int(i)?),
            _ => serde_json::Value::from(self.text(i)?),
        };
        crate::report_read::sqlite_time(&value)
            .map(Some)
            .map_err(|e| Failure {
                code: ffi::SQLITE_MISMATCH,
                message: format!("column {}: {e}", self.name(i)),
            })
    }

    fn name(&self, i: c_int) -> String {
        // SAFETY: the name lives as long as the statement; copied at once.
        unsafe {
            let p = ffi::sqlite3_column_name(self.st.as_ptr(), i);
            if p.is_null() {
                i.to_string()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        }
    }

    fn mismatch(&self, i: c_int, wanted: &str, got: c_int) -> Failure {
        let got = match got {
            ffi::SQLITE_INTEGER => "an integer",
            ffi::SQLITE_FLOAT => "a real number",
            ffi::SQLITE_TEXT => "text",
            ffi::SQLITE_BLOB => "a blob",
            _ => "NULL",
        };
        Failure {
            code: ffi::SQLITE_MISMATCH,
            message: format!("column {} holds {got}, {wanted} was expected", self.name(i)),
        }
    }
}

/// A value as SQLite takes it.
#[derive(Debug, PartialEq)]
pub(crate) enum Bound<'v> {
    Null,
    Int(i64),
    Real(f64),
    Text(Cow<'v, str>),
    Blob(&'v [u8]),
}

/// The values of `st`, each as [`bound`] binds it.
pub(crate) fn bound_values(st: &sea_orm::Statement) -> Result<Vec<Bound<'_>>> {
    st.values
        .as_ref()
        .map_or(&[][..], |v| &v.0[..])
        .iter()
        .map(bound)
        .collect()
}

/// A sea-query value as sqlx binds it on SQLite: `sea-query-sqlx` hands each kind to sqlx,
/// whose encoders store booleans and integers as integers, times as text (`DateTime` in RFC
/// 3339 with the offset and as many fraction digits as needed, `NaiveDateTime` `%F %T%.f`,
/// `NaiveDate` `%F`, `NaiveTime` `%T%.f`) and JSON as its text. Kinds the store never writes
/// (UUIDs, decimals, arrays, …) are refused rather than guessed.
pub(crate) fn bound(v: &Value) -> Result<Bound<'_>> {
    let refused = |message: String| Failure {
        code: ffi::SQLITE_MISMATCH,
        message,
    };
    fn or_null<'a, T>(v: &'a Option<T>, f: impl FnOnce(&'a T) -> Bound<'a>) -> Bound<'a> {
        v.as_ref().map_or(Bound::Null, f)
    }
    fn rfc3339<'a, Tz: chrono::TimeZone>(t: &DateTime<Tz>) -> Bound<'a>
    where
        Tz::Offset: std::fmt::Display,
    {
        Bound::Text(t.to_rfc3339_opts(SecondsFormat::AutoSi, false).into())
    }
    Ok(match v {
        Value::Bool(b) => or_null(b, |b| Bound::Int(i64::from(*b))),
        Value::TinyInt(n) => or_null(n, |n| Bound::Int(i64::from(*n))),
        Value::SmallInt(n) => or_null(n, |n| Bound::Int(i64::from(*n))),
        Value::Int(n) => or_null(n, |n| Bound::Int(i64::from(*n))),
        Value::BigInt(n) => or_null(n, |n| Bound::Int(*n)),
        Value::TinyUnsigned(n) => or_null(n, |n| Bound::Int(i64::from(*n))),
        Value::SmallUnsigned(n) => or_null(n, |n| Bound::Int(i64::from(*n))),
        Value::Unsigned(n) => or_null(n, |n| Bound::Int(i64::from(*n))),
        Value::BigUnsigned(Some(n)) => Bound::Int(
            i64::try_from(*n)
                .map_err(|_| refused(format!("{n} does not fit SQLite's integers")))?,
        ),
        Value::BigUnsigned(None) => Bound::Null,
        Value::Float(f) => or_null(f, |f| Bound::Real(f64::from(*f))),
        Value::Double(f) => or_null(f, |f| Bound::Real(*f)),
        Value::String(s) => or_null(s, |s| Bound::Text(Cow::Borrowed(s))),
        Value::Char(c) => or_null(c, |c| Bound::Text(c.to_string().into())),
        Value::Enum(OptionEnum::Some(e)) => Bound::Text(Cow::Borrowed(e.value.as_ref())),
        Value::Enum(OptionEnum::None(_)) => Bound::Null,
        Value::Bytes(b) => or_null(b, |b| Bound::Blob(b)),
        Value::Json(j) => or_null(j, |j| Bound::Text(j.to_string().into())),
        Value::ChronoDate(d) => or_null(d, |d| Bound::Text(d.format("%F").to_string().into())),
        Value::ChronoTime(t) => or_null(t, |t| Bound::Text(t.format("%T%.f").to_string().into())),
        Value::ChronoDateTime(t) => {
            or_null(t, |t| Bound::Text(t.format("%F %T%.f").to_string().into()))
        }
        Value::ChronoDateTimeUtc(t) => or_null(t, rfc3339),
        Value::ChronoDateTimeLocal(t) => or_null(t, rfc3339),
        Value::ChronoDateTimeWithTimeZone(t) => or_null(t, rfc3339),
        other => {
            return Err(refused(format!(
                "the store does not write values like {other:?} on SQLite"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;
    use chrono::{FixedOffset, NaiveDate, NaiveTime, TimeZone};
    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    fn writer_of(db: &TestDb) -> Owned {
        let file = db.dir.join("rectify.db");
        Owned::open(&file, &[], &[]).expect("open")
    }

    /// Every kind of value the store could write reaches SQLite as sqlx puts it there: the
    /// same storage class and the same bytes (`quote`), through the pool (sqlx) and through
    /// the direct binding.
    #[tokio::test]
    async fn values_are_stored_as_sqlx_stores_them() {
        let db = TestDb::sqlite();
        let store = db.store().await;
        let writer = writer_of(&db);
        let beijing = FixedOffset::east_opt(8 * 3600).expect("offset");
        let t = beijing
            .with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
            .single()
            .expect("time")
            + chrono::Duration::microseconds(123_456);
        let whole = Utc
            .with_ymd_and_hms(2026, 12, 31, 23, 59, 59)
            .single()
            .expect("time");
        let values = vec![
            Value::Bool(Some(true)),
            Value::Bool(Some(false)),
            Value::Bool(None),
            Value::TinyInt(Some(-3)),
            Value::SmallInt(Some(-300)),
            Value::Int(Some(i32::MIN)),
            Value::BigInt(Some(i64::MAX)),
            Value::BigInt(None),
            Value::TinyUnsigned(Some(255)),
            Value::SmallUnsigned(Some(65_535)),
            Value::Unsigned(Some(u32::MAX)),
            Value::BigUnsigned(Some(7)),
            Value::Float(Some(1.5)),
            Value::Double(Some(-0.1)),
            Value::String(Some("整改 'quoted' \"and\" ;".into())),
            Value::String(Some(String::new())),
            Value::String(None),
            Value::Char(Some('改')),
            Value::Bytes(Some(vec![0, 1, 255])),
            Value::Json(Some(Box::new(
                serde_json::json!({"a": [1, "二"], "b": null}),
            ))),
            Value::ChronoDate(NaiveDate::from_ymd_opt(2026, 2, 28)),
            Value::ChronoTime(NaiveTime::from_hms_micro_opt(9, 5, 7, 250)),
            Value::ChronoDateTime(Some(t.naive_local())),
            Value::ChronoDateTimeUtc(Some(t.with_timezone(&Utc))),
            Value::ChronoDateTimeUtc(Some(whole)),
            Value::ChronoDateTimeUtc(None),
            Value::ChronoDateTimeWithTimeZone(Some(t)),
            Value::ChronoDateTimeLocal(Some(t.with_timezone(&chrono::Local))),
            Value::Enum(OptionEnum::Some(Box::new(sea_orm::sea_query::Enum {
                type_name: "state".into(),
                value: "in_progress".into(),
            }))),
        ];
        for v in values {
            let via_sqlx: String = store
                .db()
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Sqlite,
                    "SELECT quote(?) AS q",
                    [v.clone()],
                ))
                .await
                .expect("query")
                .expect("row")
                .try_get("", "q")
                .expect("quote");
            let c = writer.conn();
            let mut st = c.prepare("SELECT quote(?)").expect("prepare");
            st.bind(&[bound(&v).expect("a kind the store writes")])
                .expect("bind");
            assert!(st.step().expect("step"));
            assert_eq!(st.text(0).expect("text"), Some(via_sqlx), "{v:?}");
        }
        // A kind the store never writes is refused, not guessed; so is an unsigned number
        // past SQLite's integers.
        let e = bound(&Value::Uuid(Some(sea_orm::prelude::Uuid::nil()))).expect_err("a UUID");
        assert!(e.message.contains("does not write values like Uuid"), "{e}");
        let e = bound(&Value::BigUnsigned(Some(u64::MAX))).expect_err("too big");
        assert!(e.message.contains("does not fit"), "{e}");
        store.close().await.expect("close");
        db.cleanup().await;
    }

    /// SQL with two statements is refused (each statement is bound with its own values); a
    /// wrong number of values, a column of the wrong type and a failing statement say what
    /// went wrong.
    #[tokio::test]
    async fn misuse_and_failures_are_named() {
        let db = TestDb::sqlite();
        let store = db.store().await;
        let writer = writer_of(&db);
        let c = writer.conn();
        let e = c
            .prepare("SELECT 1; SELECT 2")
            .err()
            .expect("two statements");
        assert!(e.message.contains("more than one statement"), "{e}");
        assert!(
            c.prepare("SELECT 1;  \n").is_ok(),
            "a trailing semicolon is one statement"
        );
        let e = c.run("SELECT ?", &[]).expect_err("a value missing");
        assert!(e.message.contains("1 parameters, 0 values"), "{e}");
        let e = c
            .run("INSERT INTO no_such_table VALUES (1)", &[])
            .expect_err("no table");
        assert!(e.to_string().contains("no_such_table"), "{e}");
        c.exec("CREATE TEMP TABLE once (k INTEGER UNIQUE); INSERT INTO once VALUES (1)")
            .expect("temp table");
        let e = c
            .run("INSERT INTO once VALUES (?)", &[Bound::Int(1)])
            .expect_err("a duplicate");
        assert_eq!(
            e.code,
            ffi::SQLITE_CONSTRAINT_UNIQUE,
            "the extended code: {e}"
        );
        let mut st = c.prepare("SELECT 'text' AS v").expect("prepare");
        assert!(st.step().expect("row"));
        let e = st.int(0).expect_err("text is not an integer");
        assert!(e.message.contains("column v holds text"), "{e}");
        drop(st);
        let mut st = c.prepare("SELECT 'next week' AS t").expect("prepare");
        assert!(st.step().expect("row"));
        let e = st.time(0).expect_err("not a time");
        assert!(e.message.contains("next week"), "{e}");
        drop(st);
        assert!(!c.in_transaction());
        store.close().await.expect("close");
        db.cleanup().await;
    }
}

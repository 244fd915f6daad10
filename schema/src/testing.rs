//! Fresh databases for tests: a SQLite file in a temporary folder always, and a PostgreSQL
//! database created for the test when `RECTIFY_TEST_DATABASE_URL` is set (dropped afterwards).

use std::path::PathBuf;

use sea_orm::{ConnectionTrait, Database};

use crate::{ConnectSettings, Store};

/// A database that exists for one test.
pub struct TestDb {
    pub name: &'static str,
    pub url: String,
    pub dir: PathBuf,
    admin_url: Option<String>,
    pg_name: Option<String>,
    _tmp: Option<tempfile_dir::TempDir>,
}

mod tempfile_dir {
    /// A minimal self-deleting folder, so the schema crate needs no extra dependency.
    pub struct TempDir(pub std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Replaces the database name in a PostgreSQL URL, keeping any `?query`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    // The path starts at the first '/' after the authority.
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[after_scheme..]
        .find('/')
        .map(|i| i + after_scheme)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..path_start], db);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl TestDb {
    /// A fresh SQLite file.
    pub fn sqlite() -> TestDb {
        let dir = std::env::temp_dir().join(unique("rectify_test"));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TestDb {
            name: "sqlite",
            url: format!("sqlite://{}", dir.join("rectify.db").display()),
            dir: dir.clone(),
            admin_url: None,
            pg_name: None,
            _tmp: Some(tempfile_dir::TempDir(dir)),
        }
    }

    /// A fresh PostgreSQL database, when `RECTIFY_TEST_DATABASE_URL` is set.
    pub async fn postgres() -> Option<TestDb> {
        let admin_url = std::env::var("RECTIFY_TEST_DATABASE_URL").ok()?;
        if admin_url.trim().is_empty() {
            return None;
        }
        let name = unique("rectify_t");
        let admin = Database::connect(admin_url.as_str())
            .await
            .unwrap_or_else(|e| panic!("RECTIFY_TEST_DATABASE_URL is set but unreachable: {e}"));
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let _ = admin.close().await;
        let dir = std::env::temp_dir().join(unique("rectify_pg"));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Some(TestDb {
            name: "postgres",
            url: with_database(&admin_url, &name),
            dir: dir.clone(),
            admin_url: Some(admin_url),
            pg_name: Some(name),
            _tmp: Some(tempfile_dir::TempDir(dir)),
        })
    }

    /// Every backend this run tests: SQLite always, PostgreSQL when configured.
    pub async fn all() -> Vec<TestDb> {
        let mut v = vec![TestDb::sqlite()];
        if let Some(pg) = TestDb::postgres().await {
            v.push(pg);
        }
        v
    }

    pub fn settings(&self) -> ConnectSettings {
        ConnectSettings::new(self.url.clone(), self.dir.join("evidence"))
    }

    /// Opens the store and runs the migrations.
    pub async fn store(&self) -> Store {
        let store = Store::connect(&self.settings()).await.expect("connect");
        store.migrate().await.expect("migrate");
        store
    }

    /// Drops the PostgreSQL database. Call at the end of a test (Drop cannot be async).
    pub async fn cleanup(self) {
        if let (Some(admin_url), Some(name)) = (&self.admin_url, &self.pg_name)
            && let Ok(admin) = Database::connect(admin_url.as_str()).await
        {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
            let _ = admin.close().await;
        }
    }
}

/// The office's admin, unit 区发改局 (FGJ), round R2 and one item assigned to FGJ due
/// 2026-04-30, created at `now` (its reminders planned): the admin and the item's id.
pub async fn assigned_item(
    store: &Store,
    now: chrono::DateTime<chrono::Utc>,
) -> (rectify_engine::Actor, i64) {
    use rectify_engine::{Actor, Role, Source};
    let admin = Actor {
        name: "office".into(),
        role: Role::Admin,
        unit: None,
    };
    let unit = crate::Unit {
        code: "FGJ".into(),
        name: "区发改局".into(),
        parent: None,
        emails: vec!["fgj@example.gov.cn".into()],
        leader: None,
        leader_email: None,
        aliases: vec![],
    };
    store.add_unit(&unit, now).await.expect("unit");
    store
        .add_round(
            &crate::Round {
                code: "R2".into(),
                title: "十二届省委第二轮巡视".into(),
                source: Source::Inspection,
            },
            now,
        )
        .await
        .expect("round");
    let item = add_item(store, &admin, "1", now).await;
    (admin, item)
}

/// Another item like `assigned_item`'s (FGJ, round R2, due 2026-04-30), numbered `number`.
pub async fn add_item(
    store: &Store,
    admin: &rectify_engine::Actor,
    number: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> i64 {
    use rectify_engine::{Deadline, NewItem};
    store
        .create_item(
            &NewItem {
                round: "R2".into(),
                number: number.into(),
                title: format!("整改事项{number}"),
                lead_unit: Some("FGJ".into()),
                deadline: Some(Deadline::Date(
                    chrono::NaiveDate::from_ymd_opt(2026, 4, 30).expect("date"),
                )),
                ..Default::default()
            },
            admin,
            now,
            now.date_naive(),
        )
        .await
        .expect("item")
        .id
}

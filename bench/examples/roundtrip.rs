//! What one call to SQLite through sqlx costs on this machine, by where the caller waits.
//!
//! `cargo run --release -p rectify-bench --example roundtrip`
//!
//! sqlx runs every SQLite call on the connection's own worker thread: a call is a hand-off to
//! that thread and back. Each `SELECT 1` here does no work in SQLite, so its time is the
//! hand-off: from the thread that runs `block_on` (where the CLI runs a command) and from a
//! task on a runtime worker (where `serve` runs its work), back to back and after a gap of
//! CPU work such as a command's decision between reading its item and writing it
//! (BENCHMARKS.md, "Why the misses").

use std::time::Instant;

use rectify_schema::sea_orm::sqlx::{self, ConnectOptions, sqlite::SqliteConnectOptions};

const CALLS: u32 = 2_000;
const GAPS_US: [u64; 3] = [0, 20, 100];

/// Microseconds per `SELECT 1` on `conn`, with `gap_us` of busy CPU work before each.
async fn per_call(conn: &mut sqlx::SqliteConnection, gap_us: u64) -> f64 {
    let mut total = 0.0;
    for _ in 0..CALLS {
        let t = Instant::now();
        while t.elapsed().as_micros() < u128::from(gap_us) {
            std::hint::spin_loop();
        }
        let t = Instant::now();
        sqlx::raw_sql("SELECT 1")
            .execute(&mut *conn)
            .await
            .expect("SELECT 1");
        total += t.elapsed().as_secs_f64();
    }
    total / f64::from(CALLS) * 1e6
}

async fn row(label: &str, opts: &SqliteConnectOptions) -> String {
    let mut conn = opts.connect().await.expect("connect");
    let mut cells = Vec::new();
    for gap in GAPS_US {
        cells.push(format!("{:.0} µs", per_call(&mut conn, gap).await));
    }
    format!("| {label} | {} |", cells.join(" | "))
}

fn main() {
    let dir = std::env::temp_dir().join(format!("rectify-roundtrip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let opts = SqliteConnectOptions::new()
        .filename(dir.join("probe.db"))
        .create_if_missing(true);
    // The runtime the CLI builds (src/main.rs).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let header = GAPS_US
        .iter()
        .map(|g| format!("gap {g} µs"))
        .collect::<Vec<_>>()
        .join(" | ");
    println!("| one SQLite call (SELECT 1), waiting in | {header} |");
    println!("|---|{}", "---|".repeat(GAPS_US.len()));
    let o = opts.clone();
    println!("{}", runtime.block_on(row("`block_on` (the CLI)", &o)));
    let in_task = runtime
        .block_on(runtime.spawn(async move { row("a runtime task (`serve`)", &opts).await }))
        .expect("task");
    println!("{in_task}");
    let _ = std::fs::remove_dir_all(&dir);
}

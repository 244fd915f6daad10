//! `/healthz` and `/metrics` for `rectify serve`, on the address from `[http] listen` (off by
//! default). A deliberately small HTTP/1.1 responder: two read-only GET endpoints need no web
//! framework.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use rectify_schema::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::service::Stats;

/// Binds now (so a bad address fails at start) and serves in the background until `shutdown`.
pub async fn spawn(
    addr: SocketAddr,
    store: Store,
    stats: Arc<Stats>,
    shutdown: Arc<tokio::sync::Notify>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.notified() => break,
                accepted = listener.accept() => {
                    let Ok((mut sock, _)) = accepted else { continue };
                    let store = store.clone();
                    let stats = stats.clone();
                    tokio::spawn(async move {
                        let Some(req) = read_head(&mut sock).await else { return };
                        let path = req.split_whitespace().nth(1).unwrap_or("/");
                        let (status, ctype, body) = match path {
                            "/healthz" => health(&store, &stats).await,
                            "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics(&store, &stats).await),
                            _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
                        };
                        let resp = format!(
                            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = sock.write_all(resp.as_bytes()).await;
                    });
                }
            }
        }
    });
    Ok(bound)
}

/// The request's head (up to the blank line), read in as many pieces as the client sent it:
/// a client may write the request line in several segments, and answering after the first one
/// would close the connection under a client still writing. At most 4 KiB, within 5 s.
async fn read_head(sock: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        let mut chunk = [0u8; 1024];
        loop {
            let n = sock.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.len() >= 4096 {
                break;
            }
        }
        Some(())
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .ok()??;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

async fn health(store: &Store, stats: &Stats) -> (&'static str, &'static str, String) {
    let db_ok = store.ping().await.is_ok();
    let last = stats.last_pass_unix.load(Relaxed);
    let body = serde_json::json!({
        "status": if db_ok { "ok" } else { "degraded" },
        "database": if db_ok { "reachable" } else { "unreachable" },
        "last_pass_unix": if last > 0 { Some(last) } else { None },
    })
    .to_string();
    (
        if db_ok {
            "200 OK"
        } else {
            "503 Service Unavailable"
        },
        "application/json",
        body,
    )
}

async fn metrics(store: &Store, stats: &Stats) -> String {
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, v: u64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
        ));
    };
    counter(
        "rectify_passes_total",
        "Reminder passes run.",
        stats.passes.load(Relaxed),
    );
    counter(
        "rectify_messages_sent_total",
        "Messages accepted by the mail transport.",
        stats.sent.load(Relaxed),
    );
    counter(
        "rectify_messages_failed_total",
        "Messages failed permanently.",
        stats.failed.load(Relaxed),
    );
    counter(
        "rectify_messages_retried_total",
        "Transient send failures put back for retry.",
        stats.retried.load(Relaxed),
    );
    counter(
        "rectify_reminders_skipped_total",
        "Due reminders skipped (moment passed, superseded…).",
        stats.skipped.load(Relaxed),
    );
    let secs = stats.send_micros.load(Relaxed) as f64 / 1e6;
    out.push_str(&format!(
        "# HELP rectify_send_seconds Time spent delivering messages.\n# TYPE rectify_send_seconds summary\nrectify_send_seconds_sum {secs}\nrectify_send_seconds_count {}\n",
        stats.send_count.load(Relaxed)
    ));
    let pending = store.pending_reminders().await.unwrap_or(0);
    let outbox = store.outbox_depth().await.unwrap_or(0);
    out.push_str(&format!(
        "# HELP rectify_queue_depth Pending reminder rows and outbox messages.\n# TYPE rectify_queue_depth gauge\nrectify_queue_depth{{queue=\"reminders\"}} {pending}\nrectify_queue_depth{{queue=\"outbox\"}} {outbox}\n"
    ));
    let last = stats.last_pass_unix.load(Relaxed);
    out.push_str(&format!(
        "# HELP rectify_last_pass_timestamp_seconds When the last reminder pass ran.\n# TYPE rectify_last_pass_timestamp_seconds gauge\nrectify_last_pass_timestamp_seconds {last}\n"
    ));
    out
}

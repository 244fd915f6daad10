//! How much of a digest's sending cost is the SMTP client's: the same digests and trivial
//! messages through the plain transport (lettre's connection under our pool) and through a
//! bare client that does the same conversation (EHLO once, then MAIL, RCPT, DATA and the
//! message, one reply awaited after each, as lettre does) but writes the dot-stuffed message
//! and its final `.` in one write.
//!
//! `cargo run --release -p rectify-bench --example rawsmtp`
//!
//! Both build each message with `mail::build_for` (8bit) at send time, over 4 connections, to
//! the in-process test server. If the bare client's digests reach a larger share of its own
//! trivial rate than the transport's do, the difference is the client's per-byte cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rectify_notifier::mail::{self, OutgoingMail};
use rectify_notifier::testing::{SmtpServer, plain_mailer, sample_digest, trivial_mail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const REPS: usize = 400;
const CONNS: usize = 4;

async fn via_transport(mails: Arc<Vec<OutgoingMail>>) -> f64 {
    let smtp = SmtpServer::start().await.expect("smtp");
    let mailer = plain_mailer(smtp.port(), CONNS as u32, Duration::from_secs(30));
    let t = Instant::now();
    let futs: Vec<_> = (0..mails.len())
        .map(|i| {
            let (mailer, mails) = (mailer.clone(), mails.clone());
            tokio::spawn(async move { mailer.send(&mails[i]).await })
        })
        .collect();
    for f in futs {
        f.await.expect("task").expect("send");
    }
    let rate = mails.len() as f64 / t.elapsed().as_secs_f64();
    assert_eq!(smtp.received().len(), mails.len());
    smtp.stop();
    rate
}

async fn via_bare(mails: Arc<Vec<OutgoingMail>>) -> f64 {
    let smtp = SmtpServer::start().await.expect("smtp");
    let port = smtp.port();
    let next = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let conns: Vec<_> = (0..CONNS)
        .map(|_| {
            let (mails, next) = (mails.clone(), next.clone());
            tokio::spawn(async move { bare_connection(port, &mails, &next).await })
        })
        .collect();
    for c in conns {
        c.await.expect("task").expect("bare client");
    }
    let rate = mails.len() as f64 / t.elapsed().as_secs_f64();
    assert_eq!(smtp.received().len(), mails.len());
    smtp.stop();
    rate
}

async fn bare_connection(
    port: u16,
    mails: &[OutgoingMail],
    next: &AtomicUsize,
) -> std::io::Result<()> {
    let sock = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    sock.set_nodelay(true)?;
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    reply(&mut r, &mut line).await?;
    w.write_all(b"EHLO bench\r\n").await?;
    reply(&mut r, &mut line).await?;
    let mut out = Vec::new();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(m) = mails.get(i) else { break };
        let msg = mail::build_for(m, true).expect("build").formatted();
        w.write_all(b"MAIL FROM:<zgb@example.gov.cn> BODY=8BITMIME\r\n")
            .await?;
        reply(&mut r, &mut line).await?;
        w.write_all(format!("RCPT TO:<u{i}@example.gov.cn>\r\n").as_bytes())
            .await?;
        reply(&mut r, &mut line).await?;
        w.write_all(b"DATA\r\n").await?;
        reply(&mut r, &mut line).await?;
        out.clear();
        stuff(&msg, &mut out);
        w.write_all(&out).await?;
        reply(&mut r, &mut line).await?;
    }
    w.write_all(b"QUIT\r\n").await?;
    Ok(())
}

/// Reads one (possibly multi-line) reply; a reply that is not 2xx or 3xx is an error.
async fn reply(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: &mut String,
) -> std::io::Result<()> {
    loop {
        line.clear();
        if r.read_line(line).await? == 0 {
            return Err(std::io::Error::other("server closed the connection"));
        }
        if !line.starts_with('2') && !line.starts_with('3') {
            return Err(std::io::Error::other(line.clone()));
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(());
        }
    }
}

/// The message with a `.` doubled at the start of every line, then `CRLF.CRLF`.
fn stuff(msg: &[u8], out: &mut Vec<u8>) {
    out.reserve(msg.len() + 8);
    let mut rest = msg;
    let mut line_start = true;
    while !rest.is_empty() {
        if line_start && rest[0] == b'.' {
            out.push(b'.');
        }
        match rest.iter().position(|&b| b == b'\n') {
            Some(p) => {
                out.extend_from_slice(&rest[..=p]);
                rest = &rest[p + 1..];
                line_start = true;
            }
            None => {
                out.extend_from_slice(rest);
                rest = &[];
                line_start = false;
            }
        }
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let trivial = Arc::new((0..REPS).map(trivial_mail).collect::<Vec<_>>());
    println!(
        "| digest | round | transport: trivial, digests, share | bare client: trivial, digests, share |"
    );
    println!("|---|---|---|---|");
    // 30 items: about the size of the due pass's digests (17 KB); 50: the `mailcost` digest.
    for items in [30, 50] {
        let digests = Arc::new(
            (0..REPS)
                .map(|i| sample_digest(i, items))
                .collect::<Vec<_>>(),
        );
        let kb = mail::build_for(&digests[0], true)
            .expect("build")
            .formatted()
            .len() as f64
            / 1024.0;
        for round in 0..5 {
            let tt = via_transport(trivial.clone()).await;
            let td = via_transport(digests.clone()).await;
            let bt = via_bare(trivial.clone()).await;
            let bd = via_bare(digests.clone()).await;
            println!(
                "| {items} items, {kb:.1} KB | {round} | {tt:.0}/s, {td:.0}/s, {:.0}% | {bt:.0}/s, {bd:.0}/s, {:.0}% |",
                td / tt * 100.0,
                bd / bt * 100.0
            );
        }
    }
}

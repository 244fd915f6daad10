//! Where sending one digest's worth of mail goes, on this machine.
//!
//! `cargo run --release -p rectify-bench --example mailcost`
//!
//! Renders a digest of 50 items with the real templates, then times, per message: building the
//! MIME message (`mail::build`), formatting it to bytes, and the whole send to the in-process
//! test SMTP server over 4 connections, against a trivial message through the same transport.

use std::time::{Duration, Instant};

use rectify_notifier::mail::{self, OutgoingMail};
use rectify_notifier::testing::{SmtpServer, plain_mailer, sample_digest, trivial_mail};

const REPS: usize = 400;

fn digest_mail(i: usize) -> OutgoingMail {
    sample_digest(i, 50)
}

async fn rate(mails: Vec<OutgoingMail>, conns: u32) -> f64 {
    let smtp = SmtpServer::start().await.expect("smtp");
    let mailer = plain_mailer(smtp.port(), conns, Duration::from_secs(30));
    let n = mails.len();
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    let futs: Vec<_> = mails
        .into_iter()
        .map(|m| {
            let mailer = mailer.clone();
            tokio::spawn(async move { mailer.send(&m).await })
        })
        .collect();
    for f in futs {
        f.await.expect("task").expect("send");
    }
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "  {n} messages: {:.0} µs wall, {:.0} µs CPU per message ({:.0}% of 2 cores)",
        wall * 1e6 / n as f64,
        cpu * 1e6 / n as f64,
        cpu / wall / 2.0 * 100.0
    );
    smtp.stop();
    n as f64 / wall
}

fn cpu_seconds() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let d = digest_mail(0);
    println!("digest: text {} B, html {} B", d.text.len(), d.html.len());
    for eight_bit in [false, true] {
        let t = Instant::now();
        let mut bytes = 0;
        for _ in 0..REPS {
            bytes = mail::build_for(&d, eight_bit)
                .expect("build")
                .formatted()
                .len();
        }
        println!(
            "build + format ({}): {:.1} µs per message, {bytes} B of MIME",
            if eight_bit { "8bit" } else { "base64" },
            t.elapsed().as_secs_f64() * 1e6 / REPS as f64
        );
    }
    let msg = mail::build(&d).expect("build");
    let t = Instant::now();
    for _ in 0..REPS {
        std::hint::black_box(msg.formatted());
    }
    println!(
        "format alone: {:.1} µs per message",
        t.elapsed().as_secs_f64() * 1e6 / REPS as f64
    );
    for round in 0..3 {
        let triv = rate((0..REPS).map(trivial_mail).collect(), 4).await;
        let mails = (0..REPS).map(digest_mail).collect();
        let dig = rate(mails, 4).await;
        println!(
            "round {round}: trivial {triv:.0}/s, digests {dig:.0}/s = {:.0}%",
            dig / triv * 100.0
        );
    }
}

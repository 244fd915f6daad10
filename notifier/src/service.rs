//! `rectify serve`: runs the periodic jobs and delivers the outbox until told to stop.
//!
//! Between passes it sleeps until the next cron fire or outbox retry (polling at least every
//! `poll` as a fallback), and when notified that the plan changed it runs the reminder pass at
//! once (claimed like a fire, so woken instances run it once). Each fire is
//! claimed in the database by (job, fire time), so several instances fire it once; after downtime a
//! missed fire runs once, not once per missed tick. The reminder pass of a fire is then planned in
//! shards of lead units, each claimed by one instance, so instances share the planning too.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::dispatch::Dispatcher;
use crate::jobs::Job;

/// The clock: real time, or real time shifted so that it starts at a fixed moment
/// (`RECTIFY_NOW`), which lets tests and demos run the service on a chosen day.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    offset: chrono::Duration,
}

impl Clock {
    pub fn real() -> Self {
        Clock {
            offset: chrono::Duration::zero(),
        }
    }

    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Clock {
            offset: start - Utc::now(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

/// Cron schedules (seconds first, the `cron` crate's format).
#[derive(Clone, Debug)]
pub struct Schedules {
    pub jobs: Vec<(Job, cron::Schedule)>,
}

impl Schedules {
    pub fn parse(exprs: &[(Job, &str)]) -> Result<Schedules, String> {
        let mut jobs = Vec::new();
        for (job, e) in exprs {
            let s = cron::Schedule::from_str(e).map_err(|err| {
                format!(
                    "schedule.{}: `{e}` is not a cron expression: {err}",
                    job.name()
                )
            })?;
            jobs.push((*job, s));
        }
        Ok(Schedules { jobs })
    }
}

/// Counters for `/metrics` and logs.
#[derive(Debug, Default)]
pub struct Stats {
    pub passes: std::sync::atomic::AtomicU64,
    pub sent: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
    pub skipped: std::sync::atomic::AtomicU64,
    pub retried: std::sync::atomic::AtomicU64,
    pub last_pass_unix: std::sync::atomic::AtomicI64,
    /// Delivery time, for the send-latency summary.
    pub send_micros: std::sync::atomic::AtomicU64,
    pub send_count: std::sync::atomic::AtomicU64,
}

pub struct Service {
    pub dispatcher: Dispatcher,
    pub schedules: Schedules,
    pub clock: Clock,
    /// Wakes the loop and runs a reminder pass now (the plan changed; see `listen_url`).
    pub notify: Arc<Notify>,
    pub poll: Duration,
    pub stats: Arc<Stats>,
    /// PostgreSQL URL to LISTEN on for plan changes made by any process; `None` polls only.
    pub listen_url: Option<String>,
}

impl Service {
    /// The latest fire of `schedule` in (after, now], if any.
    ///
    /// Searched backwards from `now` (the cron crate walks the schedule's fields in reverse), so
    /// the cost does not grow with the number of fires in between: a schedule firing every second
    /// looked back on over 40 days still yields the fire of this second.
    fn latest_fire(
        schedule: &cron::Schedule,
        after: DateTime<Utc>,
        now: DateTime<Utc>,
        tz: chrono_tz::Tz,
    ) -> Option<DateTime<Utc>> {
        // Going back from a moment with a fraction of a second includes its whole second, so a
        // fire exactly at `now` counts.
        let from = (now + chrono::Duration::nanoseconds(1)).with_timezone(&tz);
        let t = schedule.after(&from).next_back()?.with_timezone(&Utc);
        (t > after).then_some(t)
    }

    /// Runs one round: claims and runs the jobs whose fire is due, delivers the outbox.
    ///
    /// `woken` is when this instance heard that the plan changed somewhere (a command on any
    /// machine, through LISTEN/NOTIFY): the reminder pass then runs now, not at its next cron
    /// fire, unless some instance has claimed a pass since that moment (instances woken by the
    /// same change run it once; a pass that started after the change has seen it).
    pub async fn tick(
        &self,
        token: &str,
        woken: Option<DateTime<Utc>>,
    ) -> Result<(), rectify_schema::StoreError> {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.clock.now();
        let store = &self.dispatcher.store;
        let tz = self.dispatcher.cfg.tz;
        for (job, schedule) in &self.schedules.jobs {
            let last = match store.job_last_fire(job.name()).await? {
                Some(t) => t,
                None => {
                    // First start: count the most recent fire of a periodic summary as done (no
                    // catch-up); the reminder pass runs at once.
                    let recent =
                        Self::latest_fire(schedule, now - chrono::Duration::days(40), now, tz)
                            .unwrap_or(now);
                    if *job != Job::Remind {
                        store.ensure_job(job.name(), recent).await?;
                        continue;
                    }
                    let before = recent - chrono::Duration::seconds(1);
                    store.ensure_job(job.name(), before).await?;
                    before
                }
            };
            // After downtime only the latest missed fire runs.
            let fire = match (Self::latest_fire(schedule, last, now, tz), woken) {
                (Some(fire), _) => store
                    .claim_job(job.name(), fire, &self.dispatcher.cfg.instance)
                    .await?
                    .then_some(fire),
                (None, Some(since)) if *job == Job::Remind => store
                    .claim_job_since(job.name(), now, since, &self.dispatcher.cfg.instance)
                    .await?
                    .then_some(now),
                _ => None,
            };
            let Some(fire) = fire else {
                continue;
            };
            match job {
                Job::Remind => {
                    // This instance opened the fire; the shards are planned below, by every
                    // instance that gets to them.
                    let report = self.dispatcher.open_pass(now, fire).await?;
                    self.stats.passes.fetch_add(1, Relaxed);
                    self.stats.last_pass_unix.store(now.timestamp(), Relaxed);
                    if !report.messages.is_empty() {
                        tracing::info!(messages = report.messages.len(), "failure report");
                    }
                    if let Some(why) = &report.not_run {
                        tracing::debug!(not_run = why.as_str(), "reminder pass: not run");
                    }
                }
                other => {
                    let n = self.dispatcher.run_summary(*other, fire).await?;
                    tracing::info!(job = other.name(), messages = n, "periodic job");
                }
            }
        }
        self.plan_shards().await?;
        let started = std::time::Instant::now();
        // The clock again: the jobs above may have taken a while, and the leases taken now must
        // run from now.
        let d = self.dispatcher.deliver(self.clock.now(), token).await?;
        self.stats
            .send_micros
            .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
        self.stats
            .send_count
            .fetch_add((d.sent + d.failed + d.retried) as u64, Relaxed);
        self.stats.sent.fetch_add(d.sent as u64, Relaxed);
        self.stats.failed.fetch_add(d.failed as u64, Relaxed);
        self.stats.retried.fetch_add(d.retried as u64, Relaxed);
        if d.sent + d.failed + d.retried > 0 {
            tracing::info!(
                sent = d.sent,
                retried = d.retried,
                failed = d.failed,
                "delivery"
            );
        }
        Ok(())
    }

    /// Plans the shards of the latest reminder fire that no instance has taken yet, whichever
    /// instance opened it (`Dispatcher::run_shards`).
    async fn plan_shards(&self) -> Result<(), rectify_schema::StoreError> {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.clock.now();
        let (report, shards) = self.dispatcher.run_shards(now).await?;
        if shards == 0 {
            return Ok(());
        }
        if self.stats.last_pass_unix.load(Relaxed) < now.timestamp() {
            // An instance that only planned shards ran a pass too.
            self.stats.passes.fetch_add(1, Relaxed);
            self.stats.last_pass_unix.store(now.timestamp(), Relaxed);
        }
        self.stats
            .skipped
            .fetch_add(report.skipped.len() as u64, Relaxed);
        if report.messages.is_empty() && report.skipped.is_empty() {
            tracing::debug!(shards, "reminder pass: nothing due");
            return Ok(());
        }
        tracing::info!(
            messages = report.messages.len(),
            reminders = report.reminders_queued,
            skipped = report.skipped.len(),
            shards,
            "reminder pass"
        );
        Ok(())
    }

    /// How long to sleep: until the next cron fire or outbox retry, at most `poll`.
    async fn next_wake(&self) -> Duration {
        let now = self.clock.now();
        let tz = self.dispatcher.cfg.tz;
        let mut next =
            now + chrono::Duration::from_std(self.poll).unwrap_or(chrono::Duration::seconds(60));
        for (_, s) in &self.schedules.jobs {
            if let Some(t) = s.after(&now.with_timezone(&tz)).next() {
                next = next.min(t.with_timezone(&Utc));
            }
        }
        if let Ok(Some(t)) = self.dispatcher.store.next_outbox_attempt().await {
            next = next.min(t.max(now));
        }
        (next - now)
            .to_std()
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_millis(50))
    }

    /// Runs until `shutdown` completes. On the way out it gives back the leases it holds, so
    /// another instance can send those messages at once.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), rectify_schema::StoreError> {
        let token = format!(
            "{}-{}",
            self.dispatcher.cfg.instance,
            Utc::now().timestamp_nanos_opt().unwrap_or(0)
        );
        tokio::pin!(shutdown);
        if let Some(url) = self.listen_url.clone() {
            tokio::spawn(listen_for_changes(url, self.notify.clone()));
        }
        let mut failures = 0u32;
        let mut woken = None;
        loop {
            match self.tick(&token, woken).await {
                Ok(()) => {
                    failures = 0;
                    woken = None;
                }
                Err(e) => {
                    // The database may be restarting: log, back off, carry on.
                    failures += 1;
                    let wait = Duration::from_millis(500 * 2u64.pow(failures.min(6)));
                    tracing::error!(error = %e, retry_in_ms = wait.as_millis() as u64, "scheduler round failed");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => continue,
                        _ = &mut shutdown => break,
                    }
                }
            }
            let wait = self.next_wake().await;
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.notify.notified() => {
                    tracing::debug!("plan changed elsewhere: running a reminder pass now");
                    woken = Some(self.clock.now());
                }
                _ = &mut shutdown => break,
            }
        }
        let released = self
            .dispatcher
            .store
            .release_leases(&token)
            .await
            .unwrap_or(0);
        tracing::info!(released, "scheduler stopped");
        Ok(())
    }
}

/// Wakes the scheduler when any process changes the plan: commands run `pg_notify` in their
/// transaction. Reconnects with backoff; polling covers any gap.
async fn listen_for_changes(url: String, notify: Arc<Notify>) {
    use rectify_schema::sea_orm::sqlx::postgres::PgListener;
    let mut wait = Duration::from_millis(500);
    loop {
        match PgListener::connect(&url).await {
            Ok(mut l) => {
                if l.listen(rectify_schema::PLAN_CHANNEL).await.is_ok() {
                    wait = Duration::from_millis(500);
                    tracing::info!("listening for plan changes");
                    while let Ok(_n) = l.recv().await {
                        notify.notify_one();
                    }
                }
                tracing::warn!(
                    "plan-change listener lost its connection; polling until it is back"
                );
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for plan changes; polling"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn latest(expr: &str, after: &str, now: &str) -> Option<DateTime<Utc>> {
        let s = cron::Schedule::from_str(expr).expect("cron");
        Service::latest_fire(&s, utc(after), utc(now), chrono_tz::Asia::Shanghai)
    }

    #[test]
    fn latest_fire_is_the_last_one_at_or_before_now() {
        let now = "2026-03-02T10:00:05.300+08:00";
        // Every second, looked back on over 40 days (millions of fires): this second's fire.
        assert_eq!(
            latest("* * * * * *", "2026-01-21T10:00:00+08:00", now),
            Some(utc("2026-03-02T10:00:05+08:00"))
        );
        assert_eq!(
            latest("*/2 * * * * *", "2026-01-21T10:00:00+08:00", now),
            Some(utc("2026-03-02T10:00:04+08:00"))
        );
        // A fire exactly at `now` counts; one exactly at `after` does not.
        assert_eq!(
            latest(
                "*/2 * * * * *",
                "2026-03-02T10:00:00+08:00",
                "2026-03-02T10:00:04+08:00"
            ),
            Some(utc("2026-03-02T10:00:04+08:00"))
        );
        assert_eq!(
            latest(
                "*/2 * * * * *",
                "2026-03-02T10:00:04+08:00",
                "2026-03-02T10:00:05+08:00"
            ),
            None
        );
        // Local time: the weekly dispatch at 09:00 Beijing time on Mondays.
        assert_eq!(
            latest(
                "0 0 9 * * Mon",
                "2026-01-21T00:00:00+08:00",
                "2026-03-04T12:00:00+08:00"
            ),
            Some(
                chrono_tz::Asia::Shanghai
                    .with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
                    .single()
                    .expect("time")
                    .with_timezone(&Utc)
            )
        );
        // Nothing since `after`.
        assert_eq!(
            latest("0 0 9 1 * *", "2026-03-01T09:00:00+08:00", now),
            None
        );
        assert_eq!(
            latest("0 0 9 1 * *", "2026-01-21T00:00:00+08:00", now),
            Some(utc("2026-03-01T09:00:00+08:00"))
        );
    }
}

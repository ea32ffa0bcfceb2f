//! `parley bench stream`: the delay from an event appended through one API
//! process to its arrival on live streams (`GET /api/v1/stream`) held by
//! another. Two `parley api` processes (children of the benchmark) share a
//! fresh PostgreSQL database and Redis; `streams` streams are opened on the
//! second, `events` saved replies are created one after another through the
//! first, and every delivery's delay (arrival minus the event's
//! `recorded_at`; one machine, one clock) is reported as p50, p99 and max.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use futures::StreamExt;

/// A `parley api` of the benchmark's own, killed when dropped.
struct Api {
    child: std::process::Child,
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub async fn stream(postgres: &str, redis: &str, streams: usize, events: usize) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let database = format!("parley_bench_stream_{}", uuid::Uuid::new_v4().simple());
    let admin_url = postgres.trim_end_matches('/').to_owned();
    let server_url = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(s, _)| s)
        .to_owned();
    let db_url = format!("{server_url}/{database}");
    {
        use sea_orm::ConnectionTrait;
        let admin = sea_orm::Database::connect(&admin_url)
            .await
            .context("connect to PostgreSQL")?;
        admin.execute_unprepared(&format!("CREATE DATABASE {database}")).await?;
    }
    let result = run(&exe, &db_url, redis, streams, events).await;
    {
        use sea_orm::ConnectionTrait;
        let admin = sea_orm::Database::connect(&admin_url).await?;
        let _ = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            .await;
    }
    result
}

async fn run(exe: &std::path::Path, db_url: &str, redis: &str, streams: usize, events: usize) -> anyhow::Result<()> {
    let namespace = format!("bench-stream-{}", uuid::Uuid::new_v4().simple());
    let envs = |port: u16| {
        vec![
            ("PARLEY_DATABASE_URL", db_url.to_owned()),
            ("PARLEY_REDIS_URL", redis.to_owned()),
            ("PARLEY_QUEUE_NAMESPACE", namespace.clone()),
            ("PARLEY_LISTEN", format!("127.0.0.1:{port}")),
            ("PARLEY_LOG_LEVEL", "warn".to_owned()),
            ("PARLEY_RATE_LIMIT_PER_MINUTE", "10000000".to_owned()),
        ]
    };
    let command = |args: &[&str], port: u16| {
        let mut c = std::process::Command::new(exe);
        c.args(args).envs(envs(port));
        c
    };
    let out = command(&["migrate"], 0).output()?;
    anyhow::ensure!(
        out.status.success(),
        "parley migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = command(&["admin", "create-org", "--name", "Stream benchmark"], 0).output()?;
    anyhow::ensure!(
        out.status.success(),
        "create-org: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("api_key=").map(str::to_owned))
        .context("no api_key printed")?;
    let (writer_port, reader_port) = (free_port()?, free_port()?);
    let mut apis = Vec::new();
    for port in [writer_port, reader_port] {
        let child = command(&["api"], port)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        apis.push(Api { child });
    }
    let client = reqwest::Client::builder().pool_max_idle_per_host(streams + 8).build()?;
    for port in [writer_port, reader_port] {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if Instant::now() > deadline {
                bail!("parley api on port {port} did not get ready");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    println!(
        "parley bench stream ({} cores): {streams} streams on one API process, {events} events appended through another, PostgreSQL + Redis",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // The streams, on the second process.
    let delays: Arc<Mutex<Vec<f64>>> = Arc::default();
    let mut readers = Vec::new();
    for _ in 0..streams {
        let resp = client
            .get(format!("http://127.0.0.1:{reader_port}/api/v1/stream"))
            .bearer_auth(&key)
            .send()
            .await?;
        anyhow::ensure!(resp.status().is_success(), "stream: {}", resp.status());
        let delays = delays.clone();
        readers.push(tokio::spawn(async move {
            use eventsource_stream::Eventsource;
            let mut frames = resp.bytes_stream().eventsource();
            let mut seen = 0usize;
            while let Some(Ok(frame)) = frames.next().await {
                let arrived = Utc::now();
                if frame.event != "saved_reply.created" {
                    continue;
                }
                let data: serde_json::Value = serde_json::from_str(&frame.data).unwrap_or_default();
                if let Some(at) = data["recorded_at"]
                    .as_str()
                    .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                {
                    let ms = (arrived - at).num_microseconds().unwrap_or(0) as f64 / 1000.0;
                    delays
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(ms);
                }
                seen += 1;
                if seen == events {
                    break;
                }
            }
            seen
        }));
    }
    // Give every stream time to subscribe before the first event.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The events, through the first process, one after another.
    let started = Instant::now();
    for i in 0..events {
        let r = client
            .post(format!("http://127.0.0.1:{writer_port}/api/v1/saved-replies"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"shortcut": format!("reply-{i}"), "text": format!("Saved reply number {i}.")}))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "append {i}: {}", r.status());
    }
    let appended = started.elapsed();
    let mut delivered = 0;
    for reader in readers {
        delivered += tokio::time::timeout(Duration::from_secs(60), reader)
            .await
            .unwrap_or(Ok(0))
            .unwrap_or(0);
    }
    let mut delays = delays.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    delays.sort_by(f64::total_cmp);
    println!(
        "appended {events} events in {:.1} s ({:.0} per second); delivered {delivered} of {} ({} streams x {events})",
        appended.as_secs_f64(),
        events as f64 / appended.as_secs_f64(),
        streams * events,
        streams
    );
    println!(
        "delay from append to arrival on another process's stream: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&delays, 50.0),
        percentile(&delays, 99.0),
        delays.last().copied().unwrap_or(f64::NAN)
    );
    drop(apis);
    Ok(())
}

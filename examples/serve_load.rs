//! A bounded load generator for `ferry serve` on loopback, used by `bench/serve.sh`.
//!
//! ```text
//! cargo run --release --example serve_load -- BASE_URL KEY PATH BODIES_FILE CLIENTS
//! ```
//!
//! Sends each line of BODIES_FILE once as a POST to BASE_URL+PATH from CLIENTS threads, each
//! with its own keep-alive connection, and prints one JSON line: requests, seconds, requests/s,
//! p50 and p99 latency in ms, and the count of each status. It refuses any host but loopback,
//! and it is Rust so that the client costs the shared cores little beside the server.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, key, path, bodies_file, clients] = args.as_slice() else {
        eprintln!("usage: serve_load BASE_URL KEY PATH BODIES_FILE CLIENTS");
        std::process::exit(2);
    };
    let loopback = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"];
    if !loopback.iter().any(|prefix| base.starts_with(prefix)) {
        eprintln!("serve_load only targets loopback (http://127.0.0.1:PORT), not {base:?}");
        std::process::exit(2);
    }
    let clients: usize = clients.parse().expect("CLIENTS is a number");
    let text = std::fs::read(bodies_file).expect("BODIES_FILE can be read");
    let bodies: Vec<&[u8]> = text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    let url = format!("{base}{path}");
    let authorization = format!("Token {key}");
    let next = AtomicUsize::new(0);
    let results: Mutex<(Vec<f64>, BTreeMap<u16, usize>)> = Mutex::default();
    let started = Instant::now();
    std::thread::scope(|threads| {
        for _ in 0..clients {
            threads.spawn(|| {
                // No timeout: with one, ureq resolves every request's address on a thread of its own.
                let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
                let (mut latencies, mut statuses) = (Vec::new(), BTreeMap::new());
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let sent = Instant::now();
                    let response = agent
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("authorization", &authorization)
                        .send(*body)
                        .expect("the server answers");
                    let status = response.status().as_u16();
                    let _ = response.into_body().read_to_vec();
                    latencies.push(sent.elapsed().as_secs_f64());
                    *statuses.entry(status).or_insert(0) += 1;
                }
                let mut all = results.lock().unwrap();
                all.0.extend(latencies);
                for (status, n) in statuses {
                    *all.1.entry(status).or_insert(0) += n;
                }
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let (mut latencies, statuses) = results.into_inner().unwrap();
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| latencies.get(((q * latencies.len() as f64) as usize).min(latencies.len().saturating_sub(1)));
    let ms = |v: Option<&f64>| v.map_or(0.0, |s| (s * 1e5).round() / 1e2);
    let statuses: BTreeMap<String, usize> = statuses.into_iter().map(|(s, n)| (s.to_string(), n)).collect();
    println!(
        "{}",
        serde_json::json!({
            "clients": clients,
            "requests": latencies.len(),
            "seconds": (seconds * 1e3).round() / 1e3,
            "per_second": (latencies.len() as f64 / seconds * 10.0).round() / 10.0,
            "p50_ms": ms(pick(0.5)),
            "p99_ms": ms(pick(0.99)),
            "statuses": statuses,
        })
    );
}

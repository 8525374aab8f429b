//! The HTTP client of `bench/store.sh`'s serve benchmark: creates accounts through one or more
//! `ferry serve` instances with a fixed number of requests in flight, as a platform-side loader
//! would, and prints what it measured.
//!
//! ```text
//! cargo run --release --example create_load -- ACCOUNTS_FILE KEY_FILE CONCURRENCY URL [URL…]
//! ```
//!
//! `ACCOUNTS_FILE` has one `SUPPLIER<TAB>EXTERNAL_ACCOUNT_NUMBER` per line; request `i` goes to
//! `URL[i % n]`. A 429 (the 40-in-flight limit, across every instance on one store) is retried
//! after its `Retry-After`, as the guide asks; every other answer is final. Prints one line:
//! `sent=N created=C refused=R retried_429=T wall_s=W accounts_per_s=A`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [accounts, key, concurrency, urls @ ..] = args.as_slice() else {
        eprintln!("usage: create_load ACCOUNTS_FILE KEY_FILE CONCURRENCY URL [URL…]");
        std::process::exit(2);
    };
    assert!(!urls.is_empty(), "at least one URL");
    let accounts: Vec<(String, String)> = std::fs::read_to_string(accounts)
        .expect("the accounts file")
        .lines()
        .filter_map(|l| l.split_once('\t').map(|(s, a)| (s.to_owned(), a.to_owned())))
        .collect();
    let key = std::fs::read_to_string(key).expect("the key file").trim().to_owned();
    let concurrency: usize = concurrency.parse().expect("CONCURRENCY is a number");
    let next = AtomicUsize::new(0);
    let (created, refused, retried) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
    let unexpected = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|threads| {
        for _ in 0..concurrency {
            threads.spawn(|| {
                let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((supplier, account)) = accounts.get(i) else { break };
                    let body = serde_json::json!({
                        "external_account_number": account,
                        "import_supplier_code": supplier,
                        "operations_team_name": "Migration",
                        "dry_run": false,
                    })
                    .to_string();
                    let url = format!("{}/v1/data-import/account-import-process/process/", urls[i % urls.len()]);
                    loop {
                        let answer = agent
                            .post(&url)
                            .header("Content-Type", "application/json")
                            .header("Authorization", format!("Token {key}"))
                            .send(body.as_bytes());
                        let mut response = match answer {
                            Ok(r) => r,
                            Err(e) => {
                                unexpected.lock().unwrap().push(format!("{account}: {e}"));
                                break;
                            }
                        };
                        match response.status().as_u16() {
                            201 => created.fetch_add(1, Ordering::Relaxed),
                            429 => {
                                retried.fetch_add(1, Ordering::Relaxed);
                                let wait = response
                                    .headers()
                                    .get("retry-after")
                                    .and_then(|v| v.to_str().ok()?.parse::<f64>().ok())
                                    .unwrap_or(1.0);
                                std::thread::sleep(Duration::from_secs_f64(wait));
                                continue;
                            }
                            400 => refused.fetch_add(1, Ordering::Relaxed),
                            other => {
                                let text = response.body_mut().read_to_string().unwrap_or_default();
                                unexpected.lock().unwrap().push(format!("{account}: {other} {text}"));
                                0
                            }
                        };
                        break;
                    }
                }
            });
        }
    });
    let wall = started.elapsed().as_secs_f64();
    let created = created.into_inner();
    println!(
        "sent={} created={created} refused={} retried_429={} wall_s={wall:.2} accounts_per_s={:.0}",
        accounts.len(),
        refused.into_inner(),
        retried.into_inner(),
        created as f64 / wall
    );
    let unexpected = unexpected.into_inner().unwrap();
    if !unexpected.is_empty() {
        eprintln!("{} unexpected answers, the first: {}", unexpected.len(), unexpected[0]);
        std::process::exit(1);
    }
}

//! Crash test of the processors, with the real binaries and the real local stack: while a
//! load runs through the gateway, both processors are killed with SIGKILL every few seconds
//! for over a minute and restarted; afterwards each view holds exactly the ids the gateway
//! acknowledged, each once.
#![cfg(feature = "real-services")]

mod distributed;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use distributed::{Setup, index_ids, store_ids};
use serde_json::{Value, json};

/// How long processors are killed and restarted (the issue asks for at least a minute).
const CHAOS: Duration = Duration::from_secs(65);

/// Sends batches until `stop`, recording every id the gateway acknowledged.
async fn load(url: String, tenant: String, token: String, acked: Arc<Mutex<HashSet<String>>>, stop: Arc<std::sync::atomic::AtomicBool>) {
    let client = reqwest::Client::new();
    let mut n = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let batch: Vec<Value> = (0..20)
            .map(|i| {
                n += 1;
                // Every 10th event repeats an earlier one, id and content: a producer retry.
                let m = if i == 9 && n > 40 { n - 30 } else { n };
                json!({"id": format!("{tenant}-{m}"), "action": "document.read", "actor": {"id": format!("u{}", m % 7)}, "description": format!("event {m}")})
            })
            .collect();
        let Ok(answer) = client.post(format!("{url}/v1/events/batch")).bearer_auth(&token).json(&batch).send().await else {
            continue;
        };
        if answer.status().as_u16() != 202 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let body: Value = answer.json().await.expect("json answer");
        {
            let mut ids = acked.lock().expect("lock");
            for result in body["results"].as_array().expect("results") {
                ids.insert(result["id"].as_str().expect("id").to_owned());
            }
        }
        // About 100 events/s per tenant: a steady load the processors keep up with while
        // they are killed, so the test measures loss and duplication, not throughput.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn assert_exact(view: &str, listed: &[String], acked: &HashSet<String>) {
    let held: HashSet<String> = listed.iter().cloned().collect();
    assert_eq!(held.len(), listed.len(), "{view}: {} ids listed more than once", listed.len() - held.len());
    let missing: Vec<_> = acked.difference(&held).take(10).collect();
    let extra: Vec<_> = held.difference(acked).take(10).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{view}: missing {missing:?}, extra {extra:?} (held {}, acked {})", held.len(), acked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_processors_repeatedly_loses_and_doubles_nothing() {
    let setup = Setup::new("crash", "auditlog_crash_test").await;
    let (store, index) = (setup.store().await, setup.index().await);
    let (_gateway, url) = setup.serve("gateway").await;
    let suffix = &setup.prefix["crash".len()..];

    let tenants = [format!("ca{suffix}"), format!("cb{suffix}")];
    let acked: Vec<Arc<Mutex<HashSet<String>>>> = tenants.iter().map(|_| Arc::default()).collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loads: Vec<_> = tenants
        .iter()
        .zip(&acked)
        .map(|(tenant, acked)| tokio::spawn(load(url.clone(), tenant.clone(), setup.token(Some(tenant), "writer"), Arc::clone(acked), Arc::clone(&stop))))
        .collect();

    // Chaos: SIGKILL one of the processors every 2-3 s, restart it at once.
    let mut scylla = setup.processor("scylla");
    let mut opensearch = setup.processor("opensearch");
    let chaos = Instant::now();
    let mut kills = 0;
    while chaos.elapsed() < CHAOS {
        tokio::time::sleep(Duration::from_millis(2_000 + (kills % 3) * 500)).await;
        if kills % 2 == 0 {
            drop(scylla);
            scylla = setup.processor("scylla");
        } else {
            drop(opensearch);
            opensearch = setup.processor("opensearch");
        }
        kills += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for load in loads {
        load.await.expect("load task");
    }
    assert!(kills >= 20, "processors were killed {kills} times");

    // Let the last incarnations catch up, then compare every view with what was acknowledged.
    for (tenant, acked) in tenants.iter().zip(&acked) {
        let acked = acked.lock().expect("lock").clone();
        assert!(acked.len() > 2_000, "the load was acknowledged ({} ids for {tenant})", acked.len());
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let (s, o) = (store_ids(&store, tenant).await, index_ids(&index, tenant).await);
            if (s.len() >= acked.len() && o.len() >= acked.len()) || Instant::now() > deadline {
                assert_exact("scylla", &s, &acked);
                assert_exact("opensearch", &o, &acked);
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    drop((scylla, opensearch));
}

//! Operator webhooks (issue 17, "Operator webhooks"): a receiver with its own verifier
//! (`tests/peers/webhook_receiver.py`, Python's hmac, written from docs/WEBHOOKS.md) checks
//! every signature. The sender test calls the library's `notify::webhook` directly;
//! `a_receiver_failing_twice_gets_the_event_on_the_third_try` runs the whole path on the
//! server and needs the notification router and delivery worker.

use std::process::Command;
use std::time::Duration;

use cinegate::config::{Config, Secret, WebhookConfig};
use cinegate::events::{Event, EventRecord, OrderFacts};
use cinegate::notify::{Delivery, Outcome};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::media::src_other;
use crate::harness::peer_scripts::peer;
use crate::harness::server::Server;
use crate::peers::ControlledFake;
use crate::push::eventually;

const SECRET: &str = "whsec-0123456789abcdef";

fn start_receiver(secret: &str) -> ControlledFake {
    let mut cmd = Command::new("python3");
    cmd.arg(peer("webhook_receiver.py"))
        .args(["--secret", secret]);
    ControlledFake::spawn(cmd, "webhook receiver").0
}

fn captured() -> EventRecord {
    EventRecord {
        id: 4242,
        at: 1_765_000_000,
        event: Event::OrderCaptured(OrderFacts {
            user: Uuid::now_v7(),
            film: Uuid::now_v7(),
            order: Uuid::now_v7(),
            provider: "dev".into(),
            amount: 300,
            currency: "USD".into(),
            tip: false,
        }),
    }
}

fn deliveries(receiver: &ControlledFake) -> Vec<Value> {
    receiver.state()["deliveries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn signed_deliveries_verify_independently_and_each_answer_maps_to_its_outcome() {
    let receiver = start_receiver(SECRET);
    let url = format!("{}/hooks/cinegate", receiver.base);
    let config = Config {
        webhooks: vec![WebhookConfig {
            url: url.clone(),
            secret: Secret(SECRET.into()),
            events: vec!["order.captured".into(), "order.refunded".into()],
        }],
        ..Config::default()
    };
    config.validate().expect("valid config");
    let sender = cinegate::notify::webhook::sender(&config)
        .expect("sender")
        .expect("webhooks are configured");
    let event = captured();
    let out = cinegate::notify::webhook::deliveries(&config, &event);
    assert_eq!(out.len(), 1, "{out:?}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let send = |d: &Delivery| rt.block_on(sender.send(d));

    // Fails twice (503, Retry-After 2), then accepts.
    receiver.behave(json!({"fail_first": 2, "retry_after": 2}));
    for _ in 0..2 {
        let o = send(&out[0]);
        assert!(
            matches!(o, Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(2)),
            "{o:?}"
        );
    }
    assert_eq!(send(&out[0]), Outcome::Delivered);
    let got = deliveries(&receiver);
    assert_eq!(got.len(), 3);
    for d in &got {
        assert_eq!(d["verified"], true, "{d}");
        assert_eq!(d["event"], "order.captured");
        assert_eq!(d["path"], "/hooks/cinegate");
        assert_eq!(
            d["delivery"], got[0]["delivery"],
            "one delivery id for every attempt"
        );
    }
    let body: Value =
        serde_json::from_str(got[2]["body"].as_str().unwrap_or("")).expect("JSON body");
    assert_eq!(body["id"], "4242");
    assert_eq!(body["type"], "order.captured");
    assert_eq!(body["created_at"], 1_765_000_000);
    assert_eq!(body["data"]["amount"], 300);
    assert_eq!(body["data"]["currency"], "USD");

    // 410: gone (logged; the endpoint stays configured). Another 4xx: failed.
    receiver.behave(json!({"fail_first": 3, "fail_status": 410}));
    assert!(matches!(send(&out[0]), Outcome::Gone { .. }));
    receiver.behave(json!({"fail_first": 4, "fail_status": 422}));
    assert!(matches!(send(&out[0]), Outcome::Failed { .. }));

    // Signed with another secret, the independent verifier refuses it (400: failed).
    receiver.reset();
    let mut wrong = config.clone();
    wrong.webhooks[0].secret = Secret("not-the-receivers-secret".into());
    let wrong_sender = cinegate::notify::webhook::sender(&wrong)
        .expect("sender")
        .expect("configured");
    assert!(matches!(
        rt.block_on(wrong_sender.send(&out[0])),
        Outcome::Failed { .. }
    ));
    let got = deliveries(&receiver);
    assert_eq!(got[0]["verified"], false);
    assert_eq!(got[0]["problem"], "no v1= matches");

    // Nobody listening: retried later.
    drop(receiver);
    assert!(matches!(send(&out[0]), Outcome::Retry { .. }));
    // An endpoint no longer configured: gone.
    let elsewhere = Delivery::Webhook {
        url: "https://removed.example/hook".into(),
        event: "order.captured".into(),
        body: "{}".into(),
    };
    assert!(matches!(send(&elsewhere), Outcome::Gone { .. }));
}

/// A packaging job finishes on a server with a webhook whose receiver fails twice: the
/// `film.ready` event arrives on the third try, verified by the receiver, once.
/// NEEDS the notification router and delivery worker.
#[test]
fn a_receiver_failing_twice_gets_the_event_on_the_third_try() {
    let receiver = start_receiver(SECRET);
    receiver.behave(json!({"fail_first": 2, "retry_after": 1}));
    let hooks = format!(
        "[{{url=\"{}/ops\",secret=\"{SECRET}\",events=[\"film.ready\"]}}]",
        receiver.base
    );
    let server = Server::start(&[("CINEGATE_WEBHOOKS", hooks.as_str())]);
    let admin = server.user("hooks-admin", true);
    let (film, job) = server.ingest(&src_other(), "Hooked film", false);
    server.wait_job_ready(&admin, &job, Duration::from_secs(120));
    let got = eventually(
        "the third attempt accepted",
        Duration::from_secs(90),
        || {
            let d = deliveries(&receiver);
            d.iter().any(|x| x["status"] == 200).then(|| json!(d))
        },
    );
    let got = got.as_array().cloned().unwrap_or_default();
    assert_eq!(got.len(), 3, "two failures then the delivery: {got:?}");
    assert!(got.iter().all(|d| d["verified"] == true), "{got:?}");
    assert_eq!(
        got.iter()
            .map(|d| d["status"].as_u64().unwrap_or(0))
            .collect::<Vec<_>>(),
        [503, 503, 200]
    );
    let body: Value = serde_json::from_str(got[2]["body"].as_str().unwrap_or("")).expect("JSON");
    assert_eq!(body["type"], "film.ready");
    assert_eq!(body["data"]["film"], film.as_str());
    assert_eq!(body["data"]["job"], job.as_str());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(deliveries(&receiver).len(), 3, "nothing after the delivery");
}

//! The Garage harness itself (issue 20, "Tests (real distributed storage)"): a 3-node
//! cluster with replication factor 3 serves an object written through S3 anonymously
//! through the nginx CDN and, signed, through S3 and the S3 front, and keeps serving it with
//! a node SIGKILLed; Garage refuses a wrong secret key and unsigned S3 reads. The AWS CLI is
//! the independent S3 client; reqwest fetches what it presigns.

use std::time::Duration;

use reqwest::blocking::Client;

use crate::harness::garage::Garage;

const WRONG_SECRET: &str = "a-wrong-secret-key-0123456789";

/// 2.5 MiB, so the object spans three of Garage's 1 MiB blocks, each replicated 3 times.
fn body() -> Vec<u8> {
    (0..5u32 << 19)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// PutObject through `endpoint` with the test key (a header-signed SigV4 request).
fn put(g: &Garage, endpoint: &str, key: &str, bytes: &[u8]) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    let out = g.aws_with(
        endpoint,
        g.access_key_id(),
        g.secret_access_key(),
        g.region(),
        &[
            "s3api",
            "put-object",
            "--bucket",
            g.bucket(),
            "--key",
            key,
            "--body",
            &file.path().to_string_lossy(),
        ],
    );
    assert!(
        out.status.success(),
        "put-object {key} via {endpoint}: {out:?}"
    );
}

/// A presigned GET URL for `key` at `endpoint`, signed with `secret` for `region`.
fn presign(g: &Garage, endpoint: &str, secret: &str, region: &str, key: &str) -> String {
    let out = g.aws_with(
        endpoint,
        g.access_key_id(),
        secret,
        region,
        &[
            "s3",
            "presign",
            &format!("s3://{}/{key}", g.bucket()),
            "--expires-in",
            "300",
        ],
    );
    assert!(out.status.success(), "presign: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// GETs `url` and asserts a 200 with exactly `want` as the body.
fn get_ok(http: &Client, url: &str, want: &[u8], what: &str) -> reqwest::header::HeaderMap {
    let resp = http
        .get(url)
        .header("Origin", "http://viewer.example")
        .send()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = resp.status();
    let headers = resp.headers().clone();
    let got = resp.bytes().unwrap();
    assert_eq!(
        status,
        200,
        "{what}: {}",
        String::from_utf8_lossy(&got[..got.len().min(500)])
    );
    assert!(
        got[..] == want[..],
        "{what}: body differs ({} bytes)",
        got.len()
    );
    headers
}

fn status_of(http: &Client, url: &str) -> (u16, String) {
    let resp = http.get(url).send().unwrap();
    (resp.status().as_u16(), resp.text().unwrap_or_default())
}

#[test]
fn objects_stay_readable_through_the_cdn_and_s3_with_one_node_killed() {
    let mut g = Garage::start();
    let (healthy, ready) = g.startup_times();
    eprintln!(
        "garage: 3 nodes healthy after {:.2} s, bucket + key + CORS + nginx ready after {:.2} s",
        healthy.as_secs_f64(),
        ready.as_secs_f64()
    );
    let http = client();
    let want = body();
    let key = "films/f1/v0/seg00000.ts";
    put(&g, &g.s3_endpoint(), key, &want);

    let cdn_url = format!("{}/{key}", g.cdn_base_url());
    let headers = get_ok(&http, &cdn_url, &want, "anonymous GET through the CDN");
    assert_eq!(
        headers
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("*"),
        "the CDN passes the bucket's CORS rule through: {headers:?}"
    );
    let missing = status_of(&http, &format!("{}/films/f1/none.ts", g.cdn_base_url()));
    assert_eq!(
        missing.0, 404,
        "a missing object through the CDN: {missing:?}"
    );
    // Signed reads: straight to node 0, and through the nginx S3 front, which forwards the
    // Host header the client signed (so Garage's SigV4 check still passes).
    let direct = presign(&g, &g.s3_endpoint(), g.secret_access_key(), g.region(), key);
    get_ok(&http, &direct, &want, "presigned GET from node 0");
    let front = presign(
        &g,
        &g.s3_front_endpoint(),
        g.secret_access_key(),
        g.region(),
        key,
    );
    get_ok(&http, &front, &want, "presigned GET through the S3 front");

    // Kill node 1, not node 0: node 0 is the S3 endpoint, and what is under test is that
    // the cluster (quorum 2 of 3) and the CDN route around a dead replica. nginx's round
    // robin sends one of every three requests to node 1 first, so three GETs in a row each
    // way make sure one of them had to fail over.
    g.kill_node(1);
    for n in 0..3 {
        get_ok(
            &http,
            &cdn_url,
            &want,
            &format!("CDN GET {n} with node 1 dead"),
        );
        get_ok(
            &http,
            &front,
            &want,
            &format!("S3 front GET {n} with node 1 dead"),
        );
    }
    get_ok(
        &http,
        &direct,
        &want,
        "presigned GET from node 0 with node 1 dead",
    );
    // Writes reach a quorum too, and are served at once; this one goes through the S3 front
    // (a header-signed PUT with a body, which nginx passes on as signed).
    let key2 = "films/f1/v0/seg00001.ts";
    let want2 = want[..100_000].to_vec();
    put(&g, &g.s3_front_endpoint(), key2, &want2);
    get_ok(
        &http,
        &format!("{}/{key2}", g.cdn_base_url()),
        &want2,
        "an object written with node 1 dead, through the CDN",
    );
}

#[test]
fn garage_refuses_a_wrong_secret_and_unsigned_s3_reads() {
    let g = Garage::start();
    let http = client();
    let key = "films/f2/poster.jpg";
    let want = b"not really a poster".to_vec();
    put(&g, &g.s3_endpoint(), key, &want);

    let good = presign(&g, &g.s3_endpoint(), g.secret_access_key(), g.region(), key);
    get_ok(&http, &good, &want, "presigned with the right secret");
    let bad = presign(&g, &g.s3_endpoint(), WRONG_SECRET, g.region(), key);
    let (status, text) = status_of(&http, &bad);
    assert_eq!(status, 403, "a wrong secret key: {text}");
    assert!(text.contains("AccessDenied"), "{text}");
    // The region is part of the signature's scope: Garage checks it against its s3_region.
    let other_region = presign(
        &g,
        &g.s3_endpoint(),
        g.secret_access_key(),
        "us-east-1",
        key,
    );
    assert!(other_region.contains("us-east-1"), "{other_region}");
    let (status, text) = status_of(&http, &other_region);
    assert_eq!(status, 400, "a signature for another region: {text}");
    // Anonymous reads exist only on the web endpoint (the CDN), never on the S3 API.
    let (status, text) = status_of(&http, &format!("{}/{}/{key}", g.s3_endpoint(), g.bucket()));
    assert_eq!(status, 403, "an unsigned S3 GET: {text}");
    // And a write with the wrong secret is refused by the AWS CLI's own call, too.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), b"x").unwrap();
    let out = g.aws_with(
        &g.s3_endpoint(),
        g.access_key_id(),
        WRONG_SECRET,
        g.region(),
        &[
            "s3api",
            "put-object",
            "--bucket",
            g.bucket(),
            "--key",
            "films/f2/evil",
            "--body",
            &file.path().to_string_lossy(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("AccessDenied"),
        "{out:?}"
    );
    assert_eq!(g.list_keys("films/f2/"), vec![key.to_string()]);
}

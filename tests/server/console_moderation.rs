//! The console's Comments and System pages in a real browser (issue 15): a comment one
//! viewer reported of another's is hidden from the moderation queue and leaves the thread
//! other viewers read; another is deleted (a tombstone); a restore of a comment its author
//! deleted meanwhile shows `comment_deleted` in the page; the system page names the
//! providers and the version and shows none of the configured secrets.

use serde_json::{json, Value};

use crate::harness::browser::run_browser;
use crate::harness::server::{Server, FAST_PACE};
use crate::harness::users::User;

const PAYPAL_SECRET: &str = "paypal-secret-9f3b1c7e";
const KAKAO_SECRET: &str = "kakao-secret-5d2a8e41";
const FACEBOOK_SECRET: &str = "facebook-secret-0c6e4b93";

/// A granted viewer of `film` who has been delivered every key (past the 90% bar).
fn watcher(s: &Server, admin: &User, film: &str, tag: &str) -> Result<User, String> {
    let u = s.user(tag, false);
    s.grant(admin, film, &u);
    let pb = s.playback(&u, film);
    let n = pb.answer["total_segments"]
        .as_u64()
        .ok_or("no total_segments")? as usize;
    for i in 0..n {
        s.get(&format!("{}/keys/{i}.key", pb.prefix), None)
            .expect(200, &format!("key {i}"));
    }
    Ok(u)
}

fn thread(s: &Server, u: &User, film: &str) -> Result<Vec<Value>, String> {
    let list = s
        .get(
            &format!("/api/v1/films/{film}/comments?limit=100"),
            Some(&u.access),
        )
        .expect(200, "thread")
        .json();
    list["comments"]
        .as_array()
        .cloned()
        .ok_or_else(|| format!("not a list: {list}"))
}

#[test]
fn an_admin_hides_a_reported_comment_and_reads_the_system_page(
) -> Result<(), Box<dyn std::error::Error>> {
    let s = Server::start(&[
        FAST_PACE,
        ("CINEGATE_TRANSCODE__LADDER", "240:300k"),
        ("CINEGATE_SOCIAL__HELD_WORDS", "[\"spoiler\", \"scam\"]"),
        ("CINEGATE_PAYMENTS__DEV__ENABLED", "true"),
        (
            "CINEGATE_PAYMENTS__PAYPAL__CLIENT_ID",
            "console-paypal-client",
        ),
        ("CINEGATE_PAYMENTS__PAYPAL__CLIENT_SECRET", PAYPAL_SECRET),
        // Never reached: nothing here pays.
        ("CINEGATE_PAYMENTS__PAYPAL__API_URL", "http://127.0.0.1:1"),
        ("CINEGATE_PAYMENTS__KAKAOPAY__SECRET_KEY", KAKAO_SECRET),
        ("CINEGATE_PAYMENTS__KAKAOPAY__CID", "TC0ONETIME"),
        ("CINEGATE_PAYMENTS__KAKAOPAY__API_URL", "http://127.0.0.1:1"),
        ("CINEGATE_AUTH__FACEBOOK__APP_ID", "1234567890"),
        ("CINEGATE_AUTH__FACEBOOK__APP_SECRET", FACEBOOK_SECRET),
        // The system page's "Kept free" shows it as 50 MB.
        ("CINEGATE_DISK__MIN_FREE_BYTES", "50000000"),
    ]);
    let admin = s.user("moderator", true);
    let src = crate::harness::media::src_other();
    let (film, job) = s.ingest(&src, "Moderated <film>", true);
    s.wait_job_ready(&admin, &job, std::time::Duration::from_secs(120));
    let author = watcher(&s, &admin, &film, "mod-author")?;
    let reporter = watcher(&s, &admin, &film, "mod-reporter")?;
    let post = |body: &str| -> Result<String, String> {
        let c = s
            .post(
                &format!("/api/v1/films/{film}/comments"),
                Some(&author.access),
                json!({ "body": body }),
            )
            .expect(201, "post")
            .json();
        c["id"].as_str().map(str::to_string).ok_or(format!("{c}"))
    };
    let hide_me = post("Rude words <b>here</b>")?;
    let delete_me = post("Buy followers at example.test")?;
    for id in [&hide_me, &delete_me] {
        s.post(
            &format!("/api/v1/comments/{id}/report"),
            Some(&reporter.access),
            json!({}),
        )
        .expect(202, "report");
    }
    let held = post("Big spoiler: it was a dream")?;
    let seen = thread(&s, &reporter, &film)?;
    assert!(seen.iter().any(|c| c["id"] == hide_me.as_str()), "before");

    let out = run_browser(
        "console_moderation.mjs",
        &[
            ("BASE_URL", s.base.clone()),
            ("ADMIN_TOKEN", s.login_link_token(&admin.email)),
            ("HIDE_ID", hide_me.clone()),
            ("DELETE_ID", delete_me.clone()),
            ("HELD_ID", held),
            ("AUTHOR_EMAIL", author.email.clone()),
            ("AUTHOR_ACCESS", author.access.clone()),
            ("VERSION", env!("CARGO_PKG_VERSION").to_string()),
            (
                "SECRETS",
                [PAYPAL_SECRET, KAKAO_SECRET, FACEBOOK_SECRET].join(","),
            ),
        ],
    )?;
    assert!(out.contains("ok the system page shows no secret"), "{out}");

    let seen = thread(&s, &reporter, &film)?;
    assert!(
        !seen.iter().any(|c| c["id"] == hide_me.as_str()),
        "the hidden comment still shows to viewers: {seen:?}"
    );
    let tomb = seen
        .iter()
        .find(|c| c["id"] == delete_me.as_str())
        .ok_or("the deleted comment lost its place")?;
    assert_eq!(tomb["state"], "deleted", "{tomb}");
    assert_eq!(tomb["body"], "", "{tomb}");
    Ok(())
}

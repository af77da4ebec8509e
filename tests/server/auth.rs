//! Accounts and tokens: login links, refresh rotation and reuse detection, admin-only
//! routes, tampered and expired playback tokens.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::harness::clock::now;
use crate::harness::media::src_other;
use crate::harness::server::Server;
use crate::harness::shared::shared;

#[test]
fn login_links_work_once_and_refresh_reuse_revokes_the_family() {
    let s = &shared().server;
    let email = crate::harness::users::unique_email("rotate");
    s.cli(&["user", "create", &email]);
    let link = s.login_link_token(&email);
    let pair = s
        .post("/api/v1/auth/link", None, json!({ "token": link }))
        .expect(200, "auth/link")
        .json();
    assert_eq!(pair["token_type"], "Bearer", "{pair}");
    assert_eq!(
        pair["expires_in"], 900,
        "access tokens live 15 minutes: {pair}"
    );
    let r1 = pair["refresh_token"].as_str().unwrap().to_string();
    let a1 = pair["access_token"].as_str().unwrap().to_string();
    s.get("/api/v1/me", Some(&a1)).expect(200, "me with a1");

    // A login link works once.
    let again = s.post("/api/v1/auth/link", None, json!({ "token": link }));
    assert_eq!(
        again.status,
        401,
        "second use of a login link: {}",
        again.brief()
    );

    // Rotation.
    let second = s
        .post("/api/v1/auth/refresh", None, json!({ "refresh_token": r1 }))
        .expect(200, "refresh r1")
        .json();
    let r2 = second["refresh_token"].as_str().unwrap().to_string();
    let a2 = second["access_token"].as_str().unwrap().to_string();
    assert_ne!(r1, r2, "refresh tokens rotate");
    s.get("/api/v1/me", Some(&a2)).expect(200, "me with a2");

    // Reusing the rotated r1 is theft: 401 token_reused, and the family dies — r2 too.
    s.post("/api/v1/auth/refresh", None, json!({ "refresh_token": r1 }))
        .expect_error(401, "token_reused", "reuse of a rotated refresh token");
    let successor = s.post("/api/v1/auth/refresh", None, json!({ "refresh_token": r2 }));
    assert_eq!(
        successor.status,
        401,
        "the successor of a reused token must be revoked: {}",
        successor.brief()
    );

    // Another session of the same user is not in that family; logout ends it.
    let other = s
        .post(
            "/api/v1/auth/link",
            None,
            json!({ "token": s.login_link_token(&email) }),
        )
        .expect(200, "second login")
        .json();
    let r3 = other["refresh_token"].as_str().unwrap().to_string();
    let r4 = s
        .post("/api/v1/auth/refresh", None, json!({ "refresh_token": r3 }))
        .expect(200, "the other session still refreshes")
        .json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let out = s.post("/api/v1/auth/logout", None, json!({ "refresh_token": r4 }));
    assert_eq!(out.status, 204, "logout: {}", out.brief());
    let after = s.post("/api/v1/auth/refresh", None, json!({ "refresh_token": r4 }));
    assert_eq!(after.status, 401, "refresh after logout: {}", after.brief());

    // Garbage.
    let junk = s.post(
        "/api/v1/auth/refresh",
        None,
        json!({ "refresh_token": "not-a-token" }),
    );
    assert_eq!(junk.status, 401, "junk refresh token: {}", junk.brief());
}

#[test]
fn admin_routes_refuse_viewers_and_anonymous_callers() {
    let sh = shared();
    let s = &sh.server;
    let viewer = s.user("not-admin", false);
    let film = &sh.main.id;
    let routes: Vec<(Method, String)> = vec![
        (Method::GET, "/api/v1/admin/films".into()),
        (Method::POST, "/api/v1/admin/films".into()),
        (Method::GET, format!("/api/v1/admin/films/{film}")),
        (Method::PATCH, format!("/api/v1/admin/films/{film}")),
        (Method::DELETE, format!("/api/v1/admin/films/{film}")),
        (Method::POST, format!("/api/v1/admin/films/{film}/publish")),
        (
            Method::POST,
            format!("/api/v1/admin/films/{film}/unpublish"),
        ),
        (Method::PUT, format!("/api/v1/admin/films/{film}/source")),
        (
            Method::PUT,
            format!("/api/v1/admin/films/{film}/grants/{}", viewer.id),
        ),
        (
            Method::DELETE,
            format!("/api/v1/admin/films/{film}/grants/{}", viewer.id),
        ),
        (Method::GET, "/api/v1/admin/jobs".into()),
        (Method::GET, "/api/v1/admin/users".into()),
        (Method::POST, "/api/v1/admin/uploads".into()),
    ];
    for (method, path) in &routes {
        let body = json!({ "title": "x" });
        let as_viewer = s.exec(
            s.req(method.clone(), path)
                .bearer_auth(&viewer.access)
                .header("Tus-Resumable", "1.0.0")
                .header("Upload-Length", "10")
                .json(&body),
        );
        as_viewer.expect_error(403, "admin_only", &format!("viewer {method} {path}"));
        let anonymous = s.exec(s.req(method.clone(), path).json(&body));
        anonymous.expect_error(
            401,
            "unauthenticated",
            &format!("anonymous {method} {path}"),
        );
        let forged = s.exec(
            s.req(method.clone(), path)
                .bearer_auth(format!("{}x", viewer.access))
                .json(&body),
        );
        forged.expect_error(
            401,
            "invalid_token",
            &format!("tampered JWT {method} {path}"),
        );
    }
    // The viewer's attempts changed nothing: the film is still published and packaged.
    s.get(&format!("/api/v1/films/{film}"), None)
        .expect(200, "film still in the catalogue");
    // The admin does reach them.
    let users = s
        .get("/api/v1/admin/users", Some(&sh.admin.access))
        .expect(200, "admin users")
        .json();
    assert!(
        users.to_string().contains(&viewer.email),
        "the admin user list misses {}",
        viewer.email
    );
    // Viewer routes need a token too.
    s.get("/api/v1/me", None)
        .expect_error(401, "unauthenticated", "GET /me anonymous");
    s.post(&format!("/api/v1/films/{film}/playback"), None, json!({}))
        .expect_error(401, "unauthenticated", "playback anonymous");
}

/// Flip one character of the playback token anywhere: 401 invalid_token on every route.
#[test]
fn tampered_playback_tokens_are_refused() {
    let sh = shared();
    let (s, f) = (&sh.server, &sh.main);
    let buyer = s.user("tamper", false);
    s.grant(&sh.admin, &f.id, &buyer);
    let pb = s.playback(&buyer, &f.id);
    let other = s.playback(&buyer, &sh.other.id);
    let token = pb.token.clone();
    s.get(&pb.path("master.m3u8"), None)
        .expect(200, "untouched token");
    let dot = token.find('.').expect("token has a '.'");
    let chars: Vec<char> = token.chars().collect();
    let mut forged = Vec::new();
    for at in [
        0,
        5,
        dot / 2,
        dot - 1,
        dot + 1,
        (dot + chars.len()) / 2,
        chars.len() - 1,
    ] {
        let mut c = chars.clone();
        c[at] = if c[at] == 'A' { 'B' } else { 'A' };
        forged.push((
            format!("char {at} flipped"),
            c.into_iter().collect::<String>(),
        ));
    }
    let (a_payload, _) = token.split_at(dot);
    let (_, b_mac) = other.token.split_at(other.token.find('.').unwrap());
    forged.push((
        "payload of one token, MAC of another".into(),
        format!("{a_payload}{b_mac}"),
    ));
    forged.push(("MAC removed".into(), a_payload.to_string()));
    forged.push(("empty MAC".into(), format!("{a_payload}.")));
    forged.push(("extra char".into(), format!("{token}A")));
    forged.push(("junk".into(), "abc".into()));
    for (what, t) in &forged {
        assert_ne!(t, &token);
        for rest in [
            "master.m3u8",
            "360/index.m3u8",
            "360/00000.ts",
            "keys/0.key",
        ] {
            let r = s.get(&format!("/hls/{t}/{rest}"), None);
            r.expect_error(401, "invalid_token", &format!("{what}, {rest}"));
            if rest.ends_with(".key") {
                assert_eq!(
                    r.header("cache-control"),
                    Some("no-store"),
                    "{what}: key refusal"
                );
            }
        }
    }
}

/// The only test that waits: tokens minted with the minimum lifetimes (1 minute) stop
/// working after it — the playback token with 401 playback_expired, the access JWT with
/// 401 token_expired. Its own server, so no other test sees short tokens.
#[test]
fn playback_and_access_tokens_expire() {
    let s = Server::start(&[
        ("CINEGATE_PLAYBACK__TOKEN_TTL", "1m"),
        ("CINEGATE_AUTH__ACCESS_TTL", "1m"),
    ]);
    let admin = s.user("expiry-admin", true);
    let (film, job) = s.ingest(&src_other(), "Short film", true);
    s.wait_job_ready(&admin, &job, Duration::from_secs(120));
    let viewer = s.user("expiry", false);
    s.grant(&admin, &film, &viewer);
    let minted = now();
    let pb = s.playback(&viewer, &film);
    let expires_at = pb.answer["expires_at"].as_i64().expect("expires_at");
    assert!(
        (expires_at - (minted + 60)).abs() <= 2,
        "expires_at {expires_at}, want ≈ now + 60 = {}",
        minted + 60
    );
    for rest in [
        "master.m3u8",
        "360/index.m3u8",
        "360/00000.ts",
        "keys/0.key",
    ] {
        s.get(&pb.path(rest), None).expect(200, "fresh token");
    }
    s.get("/api/v1/me", Some(&viewer.access))
        .expect(200, "fresh access token");

    // Wait past both expiries (the access token was minted before the playback token).
    while now() <= expires_at + 1 {
        std::thread::sleep(Duration::from_millis(500));
    }
    for rest in [
        "master.m3u8",
        "360/index.m3u8",
        "360/00000.ts",
        "keys/0.key",
    ] {
        let r = s.get(&pb.path(rest), None);
        r.expect_error(401, "playback_expired", &format!("expired token, {rest}"));
        if rest.ends_with(".key") {
            assert_eq!(r.header("cache-control"), Some("no-store"));
        }
    }
    s.get("/api/v1/me", Some(&viewer.access)).expect_error(
        401,
        "token_expired",
        "expired access token",
    );
    // The refresh token still works and gives a working access token and playback.
    let fresh = s
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({ "refresh_token": viewer.refresh }),
        )
        .expect(200, "refresh after access expiry")
        .json();
    let access = fresh["access_token"].as_str().unwrap();
    let again = s
        .post(
            &format!("/api/v1/films/{film}/playback"),
            Some(access),
            json!({}),
        )
        .expect(200, "new playback")
        .json();
    let url = again["master_url"].as_str().unwrap();
    let path = &url[url.find("/hls/").unwrap()..];
    s.get(path, None).expect(200, "new token works");
}

/// A new sign-in (a fresh refresh-token family) for an existing CLI user.
fn sign_in_pair(s: &Server, email: &str) -> (String, String) {
    let pair = s
        .post(
            "/api/v1/auth/link",
            None,
            json!({ "token": s.login_link_token(email) }),
        )
        .expect(200, "auth/link")
        .json();
    (
        pair["access_token"].as_str().unwrap().to_string(),
        pair["refresh_token"].as_str().unwrap().to_string(),
    )
}

/// `n` refreshes of `token` sent at the same instant, each on its own connection.
fn refresh_race(s: &Server, token: &str, n: usize) -> Vec<crate::harness::http::Resp> {
    let barrier = std::sync::Barrier::new(n);
    std::thread::scope(|sc| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                sc.spawn(|| {
                    let client = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(30))
                        .build()
                        .unwrap();
                    let req = client
                        .post(s.url("/api/v1/auth/refresh"))
                        .json(&json!({ "refresh_token": token }));
                    barrier.wait();
                    s.exec(req)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(crate::harness::threads::join)
            .collect()
    })
}

/// Refresh rotation is atomic: of parallel uses of one token at most one gets a successor,
/// and the reuse that loses the race kills that successor, whichever order the server
/// handles them in. The 2-way rounds are the owner racing a thief who stole the token.
#[test]
fn parallel_refreshes_of_one_token_leave_no_live_successor() {
    let s = &shared().server;
    let email = crate::harness::users::unique_email("race");
    s.cli(&["user", "create", &email]);
    // Before rotation and insertion were one transaction, 10-60% of the 2-way rounds
    // (depending on the machine's load) left a live successor; 60 of them make a pass by
    // luck unlikely.
    let rounds: Vec<usize> = std::iter::once(50)
        .chain(std::iter::repeat_n(2, 60))
        .collect();
    let mut survivors = Vec::new();
    for (round, &n) in rounds.iter().enumerate() {
        let (_, token) = sign_in_pair(s, &email);
        let answers = refresh_race(s, &token, n);
        let winners: Vec<_> = answers.iter().filter(|r| r.status == 200).collect();
        assert!(
            winners.len() <= 1,
            "round {round}: {} of {n} parallel refreshes of one token succeeded",
            winners.len()
        );
        for r in answers.iter().filter(|r| r.status != 200) {
            r.expect_error(
                401,
                "token_reused",
                &format!("round {round}, a losing refresh"),
            );
        }
        if let Some(w) = winners.first() {
            let successor = w.json()["refresh_token"].as_str().unwrap().to_string();
            let r = s.post(
                "/api/v1/auth/refresh",
                None,
                json!({ "refresh_token": successor }),
            );
            // Refused as a member of the revoked family, not for any other reason (a 401
            // of another kind, or a 429, would hide a live successor).
            if (r.status, r.code().as_str()) != (401, "token_reused") {
                survivors.push(format!("round {round} ({n}-way): {}", r.brief()));
            }
        }
    }
    assert!(
        survivors.is_empty(),
        "successors of a reused token still refreshed ({} of {} rounds): {survivors:?}",
        survivors.len(),
        rounds.len()
    );
}

/// "Sign out everywhere" ends the playback URLs handed out before it: the master playlist,
/// media playlists, segments and keys under the old token are refused at once, though the
/// token has hours to live.
#[test]
fn logout_all_ends_earlier_playback_urls() {
    let sh = shared();
    let (s, f) = (&sh.server, &sh.main);
    let viewer = s.user("logout-all-playback", false);
    s.grant(&sh.admin, &f.id, &viewer);
    let pb = s.playback(&viewer, &f.id);
    let rendition = &f.renditions[0];
    let last = f.segments - 1;
    let paths = [
        "master.m3u8".to_string(),
        format!("{rendition}/index.m3u8"),
        format!("{rendition}/00000.ts"),
        format!("{rendition}/{last:05}.ts"),
        "keys/0.key".to_string(),
        format!("keys/{last}.key"),
    ];
    for rest in &paths {
        s.get(&pb.path(rest), None)
            .expect(200, &format!("{rest} before logout-all"));
    }
    let out = s.post("/api/v1/auth/logout-all", Some(&viewer.access), json!({}));
    assert_eq!(out.status, 204, "logout-all: {}", out.brief());
    for rest in &paths {
        let r = s.get(&pb.path(rest), None);
        r.expect_error(401, "invalid_token", &format!("{rest} after logout-all"));
        if rest.ends_with(".key") {
            assert_eq!(r.header("cache-control"), Some("no-store"), "{rest}");
        }
    }
    // Signing in again gives playback that works.
    let (access, _) = sign_in_pair(s, &viewer.email);
    let again = crate::harness::users::User {
        access,
        ..viewer.clone()
    };
    let fresh = s.playback(&again, &f.id);
    for rest in &paths {
        s.get(&fresh.path(rest), None)
            .expect(200, &format!("{rest} after signing in again"));
    }
}

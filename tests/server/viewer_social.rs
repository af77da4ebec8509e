//! The viewer app's comments and support panel, account page and provider sign-in in a
//! real browser (issue 16). One server for all of it: the OIDC test peer as Google, the
//! dev payment provider, the test pace, and a real `public_url` (the harness's default is a
//! dead port) so the provider sends the browser back to this server.

use serde_json::json;

use crate::harness::browser::run_browser;
use crate::harness::media::src_main;
use crate::harness::server::{Server, FAST_PACE};
use crate::harness::users::{unique_email, User};
use crate::peers::OidcPeer;

const GOOGLE_ID: &str = "viewer-social-google";
const GOOGLE_SECRET: &str = "viewer-social-secret";

fn free_port() -> Result<u16, std::io::Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Delivers the keys of `indexes` through a playback token, as a player would.
fn watch(server: &Server, viewer: &User, film: &str, indexes: std::ops::Range<usize>) {
    let pb = server.playback(viewer, film);
    for i in indexes {
        server
            .get(&pb.path(&format!("keys/{i}.key")), None)
            .expect(200, &format!("key {i}"));
    }
}

#[test]
fn comments_unlock_at_ninety_percent_the_account_page_and_provider_sign_in(
) -> Result<(), Box<dyn std::error::Error>> {
    let google = OidcPeer::start();
    let g = google.issuer.clone();
    let listen = format!("127.0.0.1:{}", free_port()?);
    let public = format!("http://{listen}");
    let server = Server::start(&[
        FAST_PACE,
        ("CINEGATE_LISTEN", &listen),
        ("CINEGATE_PUBLIC_URL", &public),
        ("CINEGATE_PAYMENTS__DEV__ENABLED", "true"),
        ("CINEGATE_AUTH__GOOGLE__CLIENT_ID", GOOGLE_ID),
        ("CINEGATE_AUTH__GOOGLE__CLIENT_SECRET", GOOGLE_SECRET),
        ("CINEGATE_AUTH__GOOGLE__ISSUER", &g),
        (
            "CINEGATE_AUTH__GOOGLE__AUTHORIZE_URL",
            &format!("{g}/authorize"),
        ),
        ("CINEGATE_AUTH__GOOGLE__TOKEN_URL", &format!("{g}/token")),
        ("CINEGATE_AUTH__GOOGLE__JWKS_URL", &format!("{g}/jwks")),
    ]);
    assert_eq!(
        server.base, public,
        "the server listens where public_url says"
    );
    let admin = server.user("social-admin", true);
    let title = "Harbour <lights>";
    let film = server.priced_film(&admin, &src_main(), title, 499);

    // The viewer buys with dev (its "provider page" is our own return URL) and watches
    // 5 of the 11 segments: 45%.
    let viewer = server.user("social-viewer", false);
    server.buy_with_dev(&viewer, &film);
    watch(&server, &viewer, &film, 0..5);

    let env = |phase: &str, token: String| {
        vec![
            ("BASE_URL", server.base.clone()),
            ("FILM_ID", film.clone()),
            ("FILM_TITLE", title.to_string()),
            ("PHASE", phase.to_string()),
            ("VIEWER_TOKEN", token),
        ]
    };
    let out = run_browser(
        "viewer_social.mjs",
        &env("locked", server.login_link_token(&viewer.email)),
    )?;
    assert!(out.contains("ok the panel is locked at 45%"), "{out}");

    // Older comments for a second page (admins need no coverage and have no rate limit).
    for i in 0..20 {
        server
            .post(
                &format!("/api/v1/films/{film}/comments"),
                Some(&admin.access),
                json!({ "body": format!("filler {i}") }),
            )
            .expect(201, "the admin comments");
    }
    // Someone else's comment for the viewer to report.
    server
        .post(
            &format!("/api/v1/films/{film}/comments"),
            Some(&admin.access),
            json!({ "body": "a comment to report" }),
        )
        .expect(201, "the admin comments");
    // Five more: 10 of 11, over the bar at the pace the test config allows.
    watch(&server, &viewer, &film, 5..10);
    // The identity the account page links.
    google.set_claims(json!({ "sub": "viewer-social-link", "email": unique_email("g-link"), "email_verified": true }));
    let out = run_browser(
        "viewer_social.mjs",
        &env("open", server.login_link_token(&viewer.email)),
    )?;
    assert!(
        out.contains("ok a comment with markup prints as text"),
        "{out}"
    );
    assert!(
        out.contains("ok sign out everywhere ends the session"),
        "{out}"
    );
    // The session and the app's tokens ended with it.
    server.get("/api/v1/me", Some(&viewer.access)).expect_error(
        401,
        "invalid_token",
        "access token after sign out everywhere",
    );

    // Deleting: a second viewer, so that the first one's account stays for the above.
    let leaving = server.user("social-leaving", false);
    let out = run_browser(
        "viewer_social.mjs",
        &env("delete", server.login_link_token(&leaving.email)),
    )?;
    assert!(out.contains("ok delete asks first, then deletes"), "{out}");
    let gone = server.get("/api/v1/me", Some(&leaving.access));
    assert_eq!(
        gone.status,
        401,
        "the deleted account still answers: {}",
        gone.brief()
    );

    // Google through the peer's button flow, back to the film.
    let email = unique_email("g-viewer");
    google.set_claims(json!({ "sub": "viewer-social-g", "email": email, "email_verified": true }));
    let out = run_browser("viewer_social.mjs", &env("provider", String::new()))?;
    assert!(
        out.contains("ok Google signs in and returns to the film"),
        "{out}"
    );
    Ok(())
}

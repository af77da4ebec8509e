//! The viewer app in a real browser (issue 16): Chromium driven by playwright-core against
//! the real server. Screenshots go to `target/console-shots/`.

use crate::harness::browser::run_browser;
use crate::harness::media::src_other;
use crate::harness::server::Server;
use crate::harness::users::unique_email;

#[test]
fn a_visitor_browses_signs_in_from_the_film_and_switches_language(
) -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::start(&[]);
    let admin = server.user("viewer-app-admin", true);
    let title = r#"<script>window.__xss=1</script> Night & "Day""#;
    let film = server.priced_film(&admin, &src_other(), title, 499);
    let viewer = unique_email("viewer-app");
    assert!(server
        .cli(&["user", "create", &viewer])
        .starts_with("created"));
    let token = server.login_link_token(&viewer);

    // The Korean UI for a Korean browser, without any cookie.
    let ko = reqwest::blocking::Client::new()
        .get(format!("{}/films/{film}", server.base))
        .header("Accept-Language", "ko-KR,ko;q=0.9,en;q=0.5")
        .send()?
        .text()?;
    assert!(ko.contains(r#"<html lang="ko">"#), "not Korean: {ko}");
    assert!(
        ko.contains("로그인하고 시청하기"),
        "the play button is not Korean"
    );
    // An old-style viewer link goes to the app's sign-in with its token.
    let old = crate::harness::http::no_redirect_client()
        .get(format!("{}/login?token=abc", server.base))
        .send()?;
    assert_eq!(old.status().as_u16(), 303);
    assert_eq!(
        old.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("/sign-in?token=abc")
    );

    let out = run_browser(
        "viewer_browse.mjs",
        &[
            ("BASE_URL", server.base.clone()),
            ("FILM_ID", film.clone()),
            ("FILM_TITLE", title.to_string()),
            ("VIEWER_TOKEN", token),
        ],
    )?;
    assert!(out.contains("ok the page reads at 390 px"), "{out}");
    Ok(())
}

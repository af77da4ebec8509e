//! The admin console in a real browser (issue 15): Chromium driven by playwright-core
//! (`tests/peers/browser/`) against the real server on loopback. Screenshots go to
//! `target/console-shots/`.

use crate::harness::browser::run_browser;
use crate::harness::server::Server;
use crate::harness::users::unique_email;

#[test]
fn only_an_admin_with_a_session_reaches_the_console() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::start(&[]);
    let api_admin = server.user("api-admin", true);
    server.create_film(&api_admin, "A draft");
    let admin = unique_email("console-admin");
    let viewer = unique_email("console-viewer");
    assert!(server
        .cli(&["user", "create", &admin, "--admin"])
        .starts_with("created"));
    assert!(server
        .cli(&["user", "create", &viewer])
        .starts_with("created"));
    let admin_link = server.login_link_token(&admin);
    let viewer_link = server.login_link_token(&viewer);
    let out = run_browser(
        "console_access.mjs",
        &[
            ("BASE_URL", server.base.clone()),
            ("ADMIN_TOKEN", admin_link),
            ("VIEWER_TOKEN", viewer_link),
        ],
    )?;
    assert!(
        out.contains("ok a viewer gets a 403 page, not the console"),
        "{out}"
    );
    Ok(())
}

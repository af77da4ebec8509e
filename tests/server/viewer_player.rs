//! The viewer app's player, paywall and checkout in a real browser (issue 16), on the
//! 66 s generated film (11 segments of 6 s, preview P = 2: the boundary at 12 s).

use crate::harness::browser::run_browser;
use crate::harness::media::src_main;
use crate::harness::server::{Server, FAST_PACE};
use crate::harness::users::unique_email;

#[test]
fn the_preview_ends_at_the_paywall_and_a_purchase_plays_on_to_the_end(
) -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::start(&[("CINEGATE_PAYMENTS__DEV__ENABLED", "true"), FAST_PACE]);
    let admin = server.user("viewer-player-admin", true);
    let film = server.priced_film(&admin, &src_main(), "Player test", 499);
    let mut tokens = Vec::new();
    for tag in ["viewer-player", "viewer-player-phone"] {
        let email = unique_email(tag);
        assert!(server
            .cli(&["user", "create", &email])
            .starts_with("created"));
        tokens.push(server.login_link_token(&email));
    }

    // A viewer whose session ended keeps the coverage box, which asks to sign in again
    // instead of sending the page away.
    let coverage = reqwest::blocking::Client::new()
        .get(format!("{}/films/{film}/watch/coverage", server.base))
        .send()?;
    assert_eq!(coverage.status().as_u16(), 200);
    let coverage = coverage.text()?;
    assert!(
        coverage.contains("Sign in again") && coverage.contains("Playback goes on"),
        "{coverage}"
    );

    let out = run_browser(
        "viewer_player.mjs",
        &[
            ("BASE_URL", server.base.clone()),
            ("FILM_ID", film.clone()),
            ("PRICE", "4.99 USD".to_string()),
            ("BOUNDARY", "12".to_string()),
            ("VIEWER_TOKEN", tokens[0].clone()),
            ("PHONE_TOKEN", tokens[1].clone()),
            ("ADMIN_ACCESS", admin.access.clone()),
            ("MISSING_FILM", uuid::Uuid::now_v7().to_string()),
        ],
    )?;
    println!("{out}");
    assert!(
        out.contains("ok phone: the same flow at 390 x 844"),
        "{out}"
    );
    Ok(())
}

//! The console's orders and users pages in a real browser (issue 15): a dev-provider
//! order refunded from its page ends the buyer's access; the users page finds the buyer,
//! disables and enables them, gives and revokes a film, and makes a sign-in link.

use serde_json::{json, Value};

use crate::harness::browser::run_browser;
use crate::harness::films::film_info;
use crate::harness::media::src_other;
use crate::harness::server::Server;
use crate::harness::users::unique_email;

/// The buyer's entitlement to `film` as a fresh playback says (`full` or `preview`).
fn entitlement(server: &Server, access: &str, film: &str) -> Value {
    server
        .post(
            &format!("/api/v1/films/{film}/playback"),
            Some(access),
            json!({}),
        )
        .expect(200, "playback")
        .json()["entitlement"]
        .clone()
}

#[test]
fn a_refund_from_the_orders_page_ends_access_and_the_users_page_manages_the_buyer(
) -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::start(&[("CINEGATE_PAYMENTS__DEV__ENABLED", "true")]);
    let api_admin = server.user("api-admin", true);
    let film = server.priced_film(&api_admin, &src_other(), "Night <b>Train</b>", 499);
    let other = server.create_film(&api_admin, "A film to give");
    let info = film_info(&server, &api_admin, &film);
    assert!(
        info.segments > info.preview,
        "the film has more than its preview"
    );

    // The buyer pays with `dev`, whose "provider page" is our own return URL.
    let buyer = server.user("buyer", false);
    let order = server.buy_with_dev(&buyer, &film);
    assert_eq!(entitlement(&server, &buyer.access, &film), "full");
    // The buyer watches the first segment, so the console has progress to show.
    let pb = server.playback(&buyer, &film);
    let first = info.renditions.first().ok_or("no rendition")?;
    server
        .get(&pb.path(&format!("{first}/00000.ts")), None)
        .expect(200, "segment 0");
    server
        .get(&pb.path("keys/0.key"), None)
        .expect(200, "key 0");

    let admin = unique_email("orders-admin");
    assert!(server
        .cli(&["user", "create", &admin, "--admin"])
        .starts_with("created"));
    let out = run_browser(
        "console_orders.mjs",
        &[
            ("BASE_URL", server.base.clone()),
            ("ADMIN_TOKEN", server.login_link_token(&admin)),
            ("ORDER_ID", order.clone()),
            ("FILM_ID", film.clone()),
            ("GIVE_FILM_ID", other.clone()),
            ("BUYER_EMAIL", buyer.email.clone()),
        ],
    )?;
    for step in [
        "ok the refund shows refunded",
        "ok search finds the buyer",
        "ok disable then enable",
        "ok give a film then revoke it",
        "ok a sign-in link is shown once",
    ] {
        assert!(out.contains(step), "{step}: {out}");
    }

    // The order is refunded as the JSON API sees it.
    let orders = server
        .get("/api/v1/admin/orders", Some(&api_admin.access))
        .expect(200, "admin orders")
        .json();
    let refunded = orders["orders"]
        .as_array()
        .and_then(|all| all.iter().find(|o| o["id"] == order.as_str()))
        .map(|o| o["state"].clone());
    assert_eq!(refunded, Some(json!("refunded")));

    // Disabling ended the buyer's sign-ins for good: their old token stays refused after
    // the account was enabled again.
    server
        .post(
            &format!("/api/v1/films/{film}/playback"),
            Some(&buyer.access),
            json!({}),
        )
        .expect(401, "the buyer's token from before the disable");
    // Signed in anew, the buyer gets the preview, not the film.
    let pair = server
        .post(
            "/api/v1/auth/link",
            None,
            json!({ "token": server.login_link_token(&buyer.email) }),
        )
        .expect(200, "the buyer signs in again")
        .json();
    let access = pair["access_token"].as_str().unwrap_or_default();
    assert_eq!(entitlement(&server, access, &film), "preview");
    Ok(())
}

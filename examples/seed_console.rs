//! Seeds a data root with a shop's worth of records for `bench/console.sh`: films, users,
//! orders over the last 30 days and comments, some reported or held. Writes through the
//! store's own functions (indexes included), with the server stopped.
//! Run: `cargo run --release --example seed_console -- MEDIA_DIR [FILMS ORDERS COMMENTS]`.

use std::path::PathBuf;

use cinegate::store::comments::{Comment, CommentState};
use cinegate::store::films::{Film, PackageSummary, Price};
use cinegate::store::orders::{Order, OrderKind, OrderState};
use cinegate::store::users::Role;
use cinegate::store::Store;
use uuid::{NoContext, Timestamp, Uuid};

const DAY: i64 = 86_400;

/// A time-ordered id of second `at` (the store keys orders and comments by creation time).
fn id_at(at: i64, n: u64) -> Uuid {
    let ts = Timestamp::from_unix(NoContext, at as u64, (n % 1_000_000) as u32 * 1000);
    Uuid::new_v7(ts)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let media: PathBuf = args
        .next()
        .ok_or("usage: seed_console MEDIA_DIR [FILMS ORDERS COMMENTS]")?
        .into();
    let films: usize = args.next().map_or(Ok(1000), |a| a.parse())?;
    let orders: usize = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let comments: usize = args.next().map_or(Ok(5_000), |a| a.parse())?;
    let store = Store::open(&media.join("store"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;

    let users: Vec<Uuid> = (0..500)
        .map(|i| {
            store
                .create_user(
                    &format!("viewer{i}@seed.example"),
                    Role::Viewer,
                    now - 40 * DAY,
                )
                .map(|u| u.id)
        })
        .collect::<Result<_, _>>()?;

    let mut film_ids = Vec::with_capacity(films);
    for i in 0..films {
        let packaged = i % 10 != 0;
        let film = Film {
            id: id_at(now - 60 * DAY + i as i64 * 60, i as u64),
            title: format!(
                "Seeded film {i:04} — {}",
                ["The Long Road", "Night Train", "바다", "Small Hours"][i % 4]
            ),
            description: "A film seeded for the console benchmark.".into(),
            prices: vec![
                Price {
                    amount: 499 + (i as u64 % 5) * 100,
                    currency: "USD".into(),
                },
                Price {
                    amount: 5_900,
                    currency: "KRW".into(),
                },
            ],
            published: packaged && i % 3 != 0,
            publish_when_ready: false,
            source: None,
            package: packaged.then(|| PackageSummary {
                dir: format!("pkg-seed-{i}"),
                duration: 5400.0 + i as f64,
                segments: 900,
                renditions: vec!["1080".into(), "720".into(), "480".into(), "360".into()],
                packaged_at: now - 30 * DAY,
                bytes: 2_000_000_000,
                stored: None,
            }),
            created_at: now - 60 * DAY,
            updated_at: now - 30 * DAY,
        };
        store.save_film(&film)?;
        film_ids.push(film.id);
    }

    for i in 0..orders {
        let at = now - 30 * DAY + (i as i64 * 30 * DAY) / orders.max(1) as i64;
        let (currency, amount) = if i % 4 == 0 {
            ("KRW", 5_900)
        } else {
            ("USD", 599)
        };
        let provider = ["paypal", "kakaopay", "naverpay", "dev"][i % 4];
        let mut order = Order::new(
            OrderKind::default(),
            users[i % users.len()],
            film_ids[i % film_ids.len()],
            provider,
            amount,
            currency,
            at,
        );
        order.id = id_at(at, i as u64);
        match i % 10 {
            0 => order.record(OrderState::Cancelled, "seed: payer left", at + 60),
            1 => {
                order.record(OrderState::Captured, "seed", at + 60);
                order.record(OrderState::Refunded, "seed", at + 3600);
            }
            2 => order.record(OrderState::Failed, "seed: declined", at + 60),
            _ => order.record(OrderState::Captured, "seed", at + 60),
        }
        store.create_order(&order)?;
    }

    for i in 0..comments {
        let at = now - 20 * DAY + i as i64 * 60;
        let c = Comment {
            id: id_at(at, i as u64),
            film_id: film_ids[i % 50],
            user_id: users[i % users.len()],
            body: format!("Seeded comment {i}: the ending stayed with me."),
            state: if i % 97 == 0 {
                CommentState::Held
            } else {
                CommentState::Visible
            },
            created_at: at,
            edited_at: None,
            history: vec![],
            reports: 0,
            deleted_by: None,
        };
        store.add_comment(&c)?;
        if i % 53 == 0 {
            store.report_comment(&c.id, &users[(i + 1) % users.len()], at + 60)?;
        }
    }
    store.flush()?;
    println!(
        "seeded {} films, {} users, {orders} orders, {comments} comments in {}",
        film_ids.len(),
        users.len(),
        media.display()
    );
    Ok(())
}

//! One-click unsubscribe (RFC 8058) and its page for people: a button, as
//! mail scanners follow links but do not press buttons.

use super::*;

/// The confirmation page: unsubscribing takes a deliberate click (mail
/// scanners follow GET links; they do not submit forms).
pub(super) async fn ask(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let known = with_pipeline(&app, move |p| p.store().subscriber_by_token(&token)).await;
    match known {
        Some(Ok(Some(s))) if s.status == Status::Active => page(
            &format!("Unsubscribe from {}", app.title),
            "<p>Stop receiving this digest?</p><form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\" style=\"font-size: 1em; padding: 0.5em 1.2em;\">Unsubscribe</button></form>",
        )
        .into_response(),
        Some(Ok(Some(_))) => page(&format!("Unsubscribe from {}", app.title), "<p>You are already unsubscribed.</p>").into_response(),
        Some(Ok(None)) => not_found(&app.title),
        Some(Err(e)) => {
            tracing::error!("unsubscribe page: {e}");
            unavailable(&app.title)
        }
        None => unavailable(&app.title),
    }
}

/// RFC 8058 one-click unsubscribe: `POST` with `List-Unsubscribe=One-Click`.
/// 200 only once the unsubscribe is recorded (in the database, or durably
/// in the queue beside it when the database is busy).
pub(super) async fn one_click(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    // RFC 8058 asks senders for multipart/form-data; browsers and most mail
    // providers send application/x-www-form-urlencoded. Accept both.
    let body = String::from_utf8_lossy(&body);
    let one_click = body.contains("List-Unsubscribe=One-Click")
        || (body.contains("name=\"List-Unsubscribe\"") && body.contains("One-Click"));
    if !one_click {
        return (
            StatusCode::BAD_REQUEST,
            page(&app.title, "<p>Expected List-Unsubscribe=One-Click.</p>"),
        )
            .into_response();
    }
    let done = with_pipeline(&app, move |p| {
        p.store().unsubscribe_by_token(&token, Utc::now())
    })
    .await;
    match done {
        Some(Ok(Unsubscribed::Unknown)) => not_found(&app.title),
        Some(Ok(how)) => {
            match how {
                Unsubscribed::Queued => {
                    tracing::warn!("a subscriber unsubscribed; the database is busy, so it waits in the queue beside it")
                }
                _ => tracing::info!("a subscriber unsubscribed"),
            }
            page(
                &format!("Unsubscribed from {}", app.title),
                "<p>You are unsubscribed and will not receive the digest again.</p>",
            )
            .into_response()
        }
        Some(Err(e)) => {
            tracing::error!("unsubscribe: {e}");
            unavailable(&app.title)
        }
        None => unavailable(&app.title),
    }
}

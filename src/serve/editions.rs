//! Stored editions as they are sent (HTML, and the text part), once they
//! are approved or being sent: drafts stay private.

use super::*;

async fn render_edition(app: &Arc<App>, date: String) -> Option<crate::render::Rendered> {
    let date: NaiveDate = date.parse().ok()?;
    with_pipeline(app, move |pipeline| {
        let stored = pipeline.stored_edition(date).ok().flatten()?;
        // Drafts stay private: only what is approved or being sent is shown.
        let public =
            stored.approved.is_some() || pipeline.store().sending_started(stored.id).ok()?;
        if !public {
            return None;
        }
        pipeline
            .renderer()
            .ok()?
            .render(&stored.edition, &pipeline.preview_recipient())
            .ok()
    })
    .await
    .flatten()
}

/// No edition of that date is published: never stored, or still a draft.
fn unpublished(title: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        page(title, "<p>No edition of that date is published here.</p>"),
    )
        .into_response()
}

pub(super) async fn html(State(app): State<Arc<App>>, Path(date): Path<String>) -> Response {
    match render_edition(&app, date).await {
        Some(r) => Html(r.html).into_response(),
        None => unpublished(&app.title),
    }
}

pub(super) async fn text(State(app): State<Arc<App>>, Path(date): Path<String>) -> Response {
    match render_edition(&app, date).await {
        Some(r) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("Subject: {}\n\n{}", r.subject, r.text),
        )
            .into_response(),
        None => unpublished(&app.title),
    }
}

//! What readers see of the editions: each published edition's web copy
//! (HTML, and the text part), the archive of them, newest first, and its
//! Atom feed. Published means sent or approved: drafts stay private.

use super::pages::page_with_head;
use super::*;

/// A date in a URL: `YYYY-MM-DD`, nothing else (anything else is a 404).
fn parse_date(date: &str) -> Option<NaiveDate> {
    (date.len() == 10)
        .then(|| NaiveDate::parse_from_str(date, "%Y-%m-%d").ok())
        .flatten()
}

async fn render_edition(app: &Arc<App>, date: String) -> Option<crate::render::Rendered> {
    let date = parse_date(&date)?;
    match with_pipeline(app, move |pipeline| pipeline.web_copy(date)).await? {
        Ok(rendered) => rendered,
        Err(e) => {
            tracing::error!("the edition of {date}: {e}");
            None
        }
    }
}

/// No edition of that date is published: never stored, or still a draft.
fn unpublished(title: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        page(title, "<p>No edition of that date is published here.</p>"),
    )
        .into_response()
}

/// Web copies change only while unsent: a browser may keep one but asks
/// again before showing it.
const REVALIDATE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "no-cache");

pub(super) async fn html(State(app): State<Arc<App>>, Path(date): Path<String>) -> Response {
    match render_edition(&app, date).await {
        Some(r) => ([REVALIDATE], Html(r.html)).into_response(),
        None => unpublished(&app.title),
    }
}

pub(super) async fn text(State(app): State<Arc<App>>, Path(date): Path<String>) -> Response {
    match render_edition(&app, date).await {
        Some(r) => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                REVALIDATE,
            ],
            format!("Subject: {}\n\n{}", r.subject, r.text),
        )
            .into_response(),
        None => unpublished(&app.title),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct PageQuery {
    page: Option<String>,
}

/// `/editions?page=N`: published editions, newest first, 30 a page.
pub(super) async fn archive(
    State(app): State<Arc<App>>,
    axum::extract::Query(query): axum::extract::Query<PageQuery>,
) -> Response {
    let number = match query.page.as_deref() {
        None => 1,
        Some(p) => match p.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => return not_found(&app.title),
        },
    };
    let listed = with_pipeline(&app, move |p| p.archive(number)).await;
    let archive = match listed {
        Some(Ok(Some(archive))) => archive,
        Some(Ok(None)) => return not_found(&app.title),
        Some(Err(e)) => {
            tracing::error!("the archive: {e}");
            return unavailable(&app.title);
        }
        None => return unavailable(&app.title),
    };
    let mut body = format!(
        "<p>Every edition of {t}, newest first. <a href=\"/subscribe\">Subscribe</a> to get it by email, \
         or follow the <a href=\"/editions.atom\">Atom feed</a>.</p>",
        t = htmlize::escape_text(&app.title)
    );
    if archive.entries.is_empty() {
        body.push_str("<p>No edition is published yet.</p>");
    }
    for e in &archive.entries {
        let headlines: String = e
            .headlines
            .iter()
            .map(|h| format!("<li>{}</li>", htmlize::escape_text(h)))
            .collect();
        body.push_str(&format!(
            "<article style=\"margin:1.5em 0;\"><h2 style=\"font-size:1.15em;margin:0;\"><a href=\"/editions/{d}\">{s}</a></h2>\
             <p style=\"margin:0.2em 0;color:#5f6b7a;font-size:0.9em;\"><time datetime=\"{d}\">{long}</time> · {n} {stories}</p>\
             <ul style=\"margin:0.3em 0;padding-left:1.2em;\">{headlines}</ul></article>",
            d = e.date,
            s = htmlize::escape_text(&e.subject),
            long = e.date.format("%A %-d %B %Y"),
            n = e.story_count,
            stories = if e.story_count == 1 { "story" } else { "stories" },
        ));
    }
    if archive.pages > 1 {
        let mut nav = Vec::new();
        if archive.page > 1 {
            nav.push(format!(
                "<a href=\"/editions?page={}\" rel=\"prev\">Newer editions</a>",
                archive.page - 1
            ));
        }
        nav.push(format!("Page {} of {}", archive.page, archive.pages));
        if archive.page < archive.pages {
            nav.push(format!(
                "<a href=\"/editions?page={}\" rel=\"next\">Older editions</a>",
                archive.page + 1
            ));
        }
        body.push_str(&format!(
            "<nav aria-label=\"Pages\"><p>{}</p></nav>",
            nav.join(" · ")
        ));
    }
    let head = format!(
        "<link rel=\"alternate\" type=\"application/atom+xml\" title=\"{}\" href=\"/editions.atom\">",
        htmlize::escape_attribute(&app.title)
    );
    (
        [REVALIDATE],
        page_with_head(&format!("{} archive", app.title), &head, &body),
    )
        .into_response()
}

/// The feed, built again only when the editions it lists change.
async fn current_feed(
    app: &Arc<App>,
) -> Option<crate::pipeline::Result<Arc<crate::pipeline::Feed>>> {
    let kept = app.feed.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let built = with_pipeline(app, move |p| p.atom_feed(kept)).await?;
    if let Ok(feed) = &built {
        *app.feed.lock().unwrap_or_else(|p| p.into_inner()) = Some(feed.clone());
    }
    Some(built)
}

/// `/editions.atom`: the last 20 sent editions (RFC 4287), answered 304
/// when the reader's copy is current (`If-None-Match`, or
/// `If-Modified-Since` without it).
pub(super) async fn atom(State(app): State<Arc<App>>, headers: axum::http::HeaderMap) -> Response {
    let feed = match current_feed(&app).await {
        Some(Ok(feed)) => feed,
        Some(Err(e)) => {
            tracing::error!("the feed: {e}");
            return unavailable(&app.title);
        }
        None => return unavailable(&app.title),
    };
    let last_modified = feed.updated.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let etag_matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == feed.etag
        });
    let not_modified = if headers.contains_key(header::IF_NONE_MATCH) {
        etag_matches
    } else {
        headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
            .is_some_and(|since| feed.updated.timestamp() <= since.timestamp())
    };
    let validators = [
        (header::ETAG, feed.etag.clone()),
        (header::LAST_MODIFIED, last_modified),
        (header::CACHE_CONTROL, "no-cache".to_owned()),
    ];
    if not_modified {
        return (StatusCode::NOT_MODIFIED, validators).into_response();
    }
    (
        validators,
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        feed.xml.clone(),
    )
        .into_response()
}

/// `/`: the archive once an edition is published, where a visitor sees
/// what the digest is before giving an address (it links the subscribe
/// page first thing); the subscribe page while there is nothing to show.
pub(super) async fn home(State(app): State<Arc<App>>) -> Response {
    let published = with_pipeline(&app, |p| p.has_published()).await;
    match published {
        Some(Ok(true)) => axum::response::Redirect::to("/editions").into_response(),
        Some(Ok(false)) => axum::response::Redirect::to("/subscribe").into_response(),
        Some(Err(e)) => {
            tracing::error!("the home page: {e}");
            unavailable(&app.title)
        }
        None => unavailable(&app.title),
    }
}

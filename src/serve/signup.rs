//! The subscribe page and its confirmation links (double opt-in): sign-ups
//! counted per client network, queued durably before the page answers,
//! recorded and mailed by the background task; the Confirm page, where the
//! owner of the address sees and may change what was typed.

use super::pages::{confirm_form, expired, subscribe_form};
use super::*;

/// The client's address: the connection's peer, or with
/// `trust_forwarded_for` the last address of `X-Forwarded-For` (the one the
/// proxy on this machine added).
pub(super) fn client_ip(app: &App, peer: SocketAddr, headers: &axum::http::HeaderMap) -> IpAddr {
    if app.trust_forwarded_for {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .next_back();
        if let Some(ip) = forwarded {
            return ip;
        }
    }
    peer.ip()
}

/// Counts a sign-up from `ip`'s network; false when its hour's allowance
/// is spent. Counted twice: in this process's memory, which alone holds
/// this process to the limit whatever the database is doing, and in the
/// database, which holds all processes, hosts and restarts to it together
/// (when the database cannot count it now, the memory's count decides).
pub(super) async fn allow_signup(app: &Arc<App>, ip: IpAddr) -> bool {
    if !allow_signup_here(app, ip) {
        return false;
    }
    let network = client_network(ip).to_string();
    let limit = app.signup_limit;
    let counter = app.clone();
    let counted = tokio::task::spawn_blocking(move || {
        let store = counter.counter.as_ref()?;
        let store = store.lock().unwrap_or_else(|p| p.into_inner());
        Some(store.count_sign_up(&network, limit, Utc::now()))
    })
    .await
    .ok()
    .flatten();
    match counted {
        Some(Ok(allowed)) => allowed,
        Some(Err(e)) => {
            tracing::warn!("a sign-up counted in this process's memory only: {e}");
            true
        }
        None => true,
    }
}

/// Counts a sign-up from `ip`'s network in this process's memory.
fn allow_signup_here(app: &App, ip: IpAddr) -> bool {
    let now = std::time::Instant::now();
    let hour = Duration::from_secs(3600);
    let mut map = app.signups.lock().unwrap_or_else(|p| p.into_inner());
    // Forget clients whose hour is over, so the map cannot grow without end.
    if map.len() > 10_000 {
        map.retain(|_, times| times.iter().any(|t| now.duration_since(*t) < hour));
    }
    let times = map.entry(client_network(ip)).or_default();
    times.retain(|t| now.duration_since(*t) < hour);
    if times.len() >= app.signup_limit as usize {
        return false;
    }
    times.push(now);
    true
}

pub(super) async fn subscribe_page(State(app): State<Arc<App>>) -> Response {
    page(
        &format!("Subscribe to {}", app.title),
        &subscribe_form(&app.title, None, "", "", ""),
    )
    .into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct SignUpForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    topics: String,
    /// The field people never see: bots fill it in.
    #[serde(default)]
    website: String,
}

/// `POST /subscribe`: checks the form, queues the sign-up durably and
/// answers; the background task records it and mails its link, so that
/// neither the page nor its timing says whether the address is already on
/// the list, and a busy database loses nothing (a queue that cannot be
/// written is a 503, never a 200).
pub(super) async fn subscribe(
    State(app): State<Arc<App>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    axum::extract::Form(form): axum::extract::Form<SignUpForm>,
) -> Response {
    let title = format!("Subscribe to {}", app.title);
    let name = form.name.trim().to_owned();
    let topics = form.topics.trim().to_owned();
    // The form again, with what was typed and what to fix.
    let invalid = |message: &str, email: &str, name: &str, topics: &str| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            page(
                &title,
                &subscribe_form(&app.title, Some(message), email, name, topics),
            ),
        )
            .into_response()
    };
    use crate::pipeline::BadField;
    let row = match crate::pipeline::check_subscriber(&form.email, Some(&name), &topics) {
        Ok(row) => row,
        Err(BadField::Email(_)) => {
            return invalid(
                "Please enter an email address, like name@example.com.",
                &form.email,
                &name,
                &topics,
            )
        }
        Err(BadField::Name(_)) => {
            return invalid(
                &format!(
                    "Please check your name: one line of at most {} characters.",
                    crate::mail::message::MAX_NAME_CHARS
                ),
                &form.email,
                "",
                &topics,
            )
        }
        Err(BadField::Topics(_)) => {
            return invalid(
                &format!(
                    "Please keep topics to one line of at most {} characters.",
                    crate::pipeline::MAX_TOPICS_CHARS
                ),
                &form.email,
                &name,
                "",
            )
        }
    };
    let email = row.email;
    if !allow_signup(&app, client_ip(&app, peer, &headers)).await {
        tracing::warn!("sign-up refused: the client's hourly limit is reached");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "3600")],
            page(&title, "<p>Too many sign-ups have come from your network in the last hour. Please try again later.</p>"),
        )
            .into_response();
    }
    let done = format!(
        "<p>Thank you. If {} can receive {}, a message with a confirmation link is on its way to it. \
         Open the link within {} days to start receiving the digest.</p><p>Nothing arrived? Check your spam folder; \
         you can ask again in an hour.</p>",
        htmlize::escape_text(&email),
        htmlize::escape_text(&app.title),
        app.confirm_days
    );
    if !form.website.is_empty() {
        tracing::info!("sign-up ignored: the hidden field was filled in (a bot)");
        return page("Check your inbox", &done).into_response();
    }
    // Queued (and synced) before the answer, whatever the database is
    // doing; recorded and mailed by the background task. Every address
    // takes the same path, so neither the page nor its timing says whether
    // it is on the list.
    let Some(queue) = app.sign_ups.clone() else {
        return record_now(&app, email, row.name, row.topics, &done).await;
    };
    let line = crate::pipeline::sign_up_line(&email, row.name.as_deref(), &row.topics);
    let path = queue.path().to_owned();
    let queued = tokio::task::spawn_blocking(move || queue.append(&line)).await;
    match queued {
        Ok(Ok(())) => {
            app.queued.notify_one();
            page("Check your inbox", &done).into_response()
        }
        Ok(Err(e)) => {
            tracing::error!("sign-up not queued: {}: {e}", path.display());
            unavailable(&app.title)
        }
        Err(_) => unavailable(&app.title),
    }
}

/// With PostgreSQL: the sign-up recorded before the answer (every address
/// the same way), its confirmation handed to the mailer task; a database
/// that cannot record it now gets a 503, never a "check your inbox".
async fn record_now(
    app: &Arc<App>,
    email: String,
    name: Option<String>,
    topics: String,
    done: &str,
) -> Response {
    let recorded = with_pipeline(app, move |p| {
        p.record_sign_up(
            &email,
            name.as_deref(),
            &topics,
            crate::store::Asker::Public,
        )
    })
    .await;
    match recorded {
        Some(Ok(Ok(confirmation))) => {
            // A full channel: the mail is tried again later (it is
            // recorded as not sent yet).
            if app.mailer.try_send(confirmation).is_err() {
                tracing::warn!("the mailer is busy: a confirmation waits for its next try");
            }
            page("Check your inbox", done).into_response()
        }
        Some(Ok(Err(outcome))) => {
            tracing::info!("sign-up: {outcome:?}");
            page("Check your inbox", done).into_response()
        }
        Some(Err(e)) => {
            tracing::error!("sign-up not recorded: {e}");
            unavailable(&app.title)
        }
        None => unavailable(&app.title),
    }
}

/// Records the queued sign-ups, and takes the confirmations that are due
/// another try, and hands them to the mailer task.
pub(super) async fn apply_sign_ups(app: &Arc<App>) {
    let work = with_pipeline(app, |p| {
        let mut mail = p.apply_queued_sign_ups();
        match p.confirmations_to_retry() {
            Ok(again) => mail.extend(again),
            Err(e) => tracing::warn!("confirmation mails to try again: {e}"),
        }
        mail
    });
    for confirmation in work.await.unwrap_or_default() {
        // A full channel: the mail is tried again later (it is recorded as
        // not sent yet).
        if app.mailer.try_send(confirmation).is_err() {
            tracing::warn!("the mailer is busy: a confirmation waits for its next try");
        }
    }
}

/// The mailer task: one confirmation at a time, without holding the
/// pipeline (a slow mail server delays no request), each recorded as sent
/// or to be tried again.
pub(super) async fn mail_confirmations(
    app: Arc<App>,
    mut queue: tokio::sync::mpsc::Receiver<crate::pipeline::Confirmation>,
) {
    while let Some(confirmation) = queue.recv().await {
        let sent = tokio::task::spawn_blocking(move || {
            let sent = confirmation.send();
            (confirmation, sent)
        })
        .await;
        let Ok((confirmation, sent)) = sent else {
            continue;
        };
        if let Err(e) = &sent {
            tracing::error!("sign-up: {e}; it is mailed again later");
        }
        with_pipeline(&app, move |p| {
            if let Err(e) = p.confirmation_mailed(&confirmation, sent.is_ok()) {
                tracing::error!("sign-up: {e}");
            }
        })
        .await;
    }
}

/// The confirmation page: a form with a button, since mail scanners follow
/// links (and never change anything: GET only reads).
pub(super) async fn confirm_page(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
) -> Response {
    let waiting = with_pipeline(&app, move |p| p.sign_up_waiting(&token)).await;
    match waiting {
        Some(Ok(Some(waiting))) => confirm_form(&app, &waiting, None),
        Some(Ok(None)) => expired(&app.title),
        Some(Err(e)) => {
            tracing::error!("confirm page: {e}");
            unavailable(&app.title)
        }
        None => unavailable(&app.title),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct ConfirmForm {
    name: Option<String>,
    topics: Option<String>,
}

pub(super) async fn confirm(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    axum::extract::Form(form): axum::extract::Form<ConfirmForm>,
) -> Response {
    let name = form.name.map(|n| n.trim().to_owned());
    let topics = form.topics.map(|t| t.trim().to_owned());
    let again = token.clone();
    let done = with_pipeline(&app, move |p| {
        p.confirm_subscription(&token, name.as_deref(), topics.as_deref())
    })
    .await;
    match done {
        Some(Ok(Confirmed::Activated)) => {
            tracing::info!("a subscription was confirmed");
            page(
                &format!("Subscribed to {}", app.title),
                "<p>You are subscribed. The next digest will come to your inbox; every one has a link to unsubscribe.</p>",
            )
            .into_response()
        }
        Some(Ok(Confirmed::Unknown)) => expired(&app.title),
        Some(Err(Error::Invalid(why))) => {
            let waiting = with_pipeline(&app, move |p| p.sign_up_waiting(&again)).await;
            match waiting {
                Some(Ok(Some(waiting))) => {
                    let mut response = confirm_form(&app, &waiting, Some(&why));
                    *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
                    response
                }
                _ => expired(&app.title),
            }
        }
        Some(Err(e)) => {
            tracing::error!("confirm: {e}");
            unavailable(&app.title)
        }
        None => unavailable(&app.title),
    }
}

/// Mails the welcome messages that are due, without holding the pipeline;
/// one that fails is due again later.
pub(super) async fn mail_welcomes(app: &Arc<App>) {
    let due = match with_pipeline(app, |p| p.welcomes_due()).await {
        Some(Ok(due)) => due,
        Some(Err(e)) => {
            tracing::warn!("welcome messages wait: {e}");
            return;
        }
        None => return,
    };
    for welcome in due {
        let sent = tokio::task::spawn_blocking(move || {
            let sent = welcome.send();
            (welcome, sent)
        })
        .await;
        let Ok((welcome, sent)) = sent else {
            continue;
        };
        if let Err(e) = sent {
            tracing::error!("{e}; it is mailed again later");
            with_pipeline(app, move |p| {
                if let Err(e) = p.welcome_failed(&welcome) {
                    tracing::error!("welcome: {e}");
                }
            })
            .await;
        }
    }
}

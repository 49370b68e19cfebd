//! Connections under hostile clients: slots (in all, and per client
//! network), a short wait for one then a 503, the whole request read by its
//! deadline, the open-files limit, and the security headers every
//! response carries.

use super::*;

/// The network a client is counted by: its IPv4 address, or its IPv6 /64
/// (one host usually holds a whole /64).
pub(super) fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Security headers on every response: no script may run (the pages have
/// none; an edition's HTML keeps its inline styles), nothing is sniffed,
/// framed, referred or cached.
pub(super) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        // A page that says how it may be cached (the feed, web copies)
        // keeps its own Cache-Control.
        if name != header::CACHE_CONTROL || !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// Reads the whole body before the handler runs, by the request's
/// deadline: a client that promises a body and never sends it is answered
/// 408 and its connection closed.
pub(super) async fn whole_request(request: Request, next: Next) -> Response {
    let deadline = DEADLINE
        .try_with(|d| *d)
        .unwrap_or_else(|_| tokio::time::Instant::now() + CONNECTION_LIFETIME);
    let (parts, body) = request.into_parts();
    match tokio::time::timeout_at(deadline, axum::body::to_bytes(body, MAX_BODY)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Ok(Err(_)) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            page("Too large", "<p>The request is too large.</p>"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            page("Too slow", "<p>The request did not arrive in time.</p>"),
        )
            .into_response(),
    }
}

/// The connection slots: `MAX_CONNECTIONS` in all, `MAX_CLIENT_CONNECTIONS`
/// a client, and how many connections wait for one.
pub(super) struct Slots {
    all: Arc<tokio::sync::Semaphore>,
    clients: Mutex<std::collections::HashMap<IpAddr, Arc<tokio::sync::Semaphore>>>,
    /// Count clients (off behind a proxy: every connection is the proxy's).
    per_client: bool,
    waiting: AtomicUsize,
}

/// A connection's slot; given back when dropped.
pub(super) struct Slot {
    _all: tokio::sync::OwnedSemaphorePermit,
    _client: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Slots {
    pub(super) fn new(per_client: bool) -> Slots {
        Slots {
            all: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
            clients: Mutex::new(std::collections::HashMap::new()),
            per_client,
            waiting: AtomicUsize::new(0),
        }
    }

    fn client(&self, peer: IpAddr) -> Option<Arc<tokio::sync::Semaphore>> {
        if !self.per_client {
            return None;
        }
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        // Forget clients with nothing open, so the map cannot grow without end.
        if clients.len() > 10_000 {
            clients.retain(|_, s| {
                Arc::strong_count(s) > 1 || s.available_permits() < MAX_CLIENT_CONNECTIONS
            });
        }
        Some(
            clients
                .entry(client_network(peer))
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(MAX_CLIENT_CONNECTIONS)))
                .clone(),
        )
    }

    /// A slot at once, if one is free.
    fn try_take(&self, client: &Option<Arc<tokio::sync::Semaphore>>) -> Option<Slot> {
        let client = match client {
            Some(c) => Some(c.clone().try_acquire_owned().ok()?),
            None => None,
        };
        let all = self.all.clone().try_acquire_owned().ok()?;
        Some(Slot {
            _all: all,
            _client: client,
        })
    }

    /// A slot within `SLOT_WAIT`, in turn.
    async fn wait(&self, client: Option<Arc<tokio::sync::Semaphore>>) -> Option<Slot> {
        let take = async {
            let client = match client {
                Some(c) => Some(c.acquire_owned().await.ok()?),
                None => None,
            };
            let all = self.all.clone().acquire_owned().await.ok()?;
            Some(Slot {
                _all: all,
                _client: client,
            })
        };
        tokio::time::timeout(SLOT_WAIT, take).await.ok().flatten()
    }
}

/// What a connection that found no slot hears before it is closed: a 503,
/// then what it sent is read and dropped for a moment (closing a socket
/// with unread data would reset it, and the client would never see the
/// answer).
pub(super) async fn busy(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let reply = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 37\r\nConnection: close\r\n\r\nBusy: please try again in a moment.\r\n";
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(reply).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            let n = stream.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// Raises this process's limit on open files to what the system allows
/// (up to 65,536): every served and every waiting connection is a file.
pub(super) fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        let wanted = limit.rlim_max.min(65_536);
        if limit.rlim_cur < wanted {
            limit.rlim_cur = wanted;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    let needed = (MAX_CONNECTIONS + MAX_WAITING + 64) as u64;
    if limit.rlim_cur < needed {
        tracing::warn!(
            "this process may open only {} files; serve needs {needed} at its busiest (`ulimit -n`)",
            limit.rlim_cur
        );
    }
}

/// Accepts connections until Ctrl-C: each gets its slot (at once, or
/// within `SLOT_WAIT`, else a 503), and is served one request that must
/// arrive whole by its deadline.
pub(super) async fn accept(
    listener: tokio::net::TcpListener,
    router: Router,
    slots: Arc<Slots>,
    request_timeout: Duration,
    header_timeout: Duration,
) {
    let shutdown = tokio::signal::ctrl_c();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let client = slots.client(peer.ip());
        let now = slots.try_take(&client);
        if now.is_none() && slots.waiting.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING {
            slots.waiting.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!("{MAX_WAITING} connections wait for a slot; closing a new one");
            continue;
        }
        let router = router.clone();
        let slots = slots.clone();
        tokio::spawn(async move {
            let slot = match now {
                Some(slot) => slot,
                None => {
                    let slot = slots.wait(client).await;
                    match slot {
                        Some(slot) => {
                            slots.waiting.fetch_sub(1, Ordering::SeqCst);
                            slot
                        }
                        None => {
                            tracing::debug!("no connection slot within {SLOT_WAIT:?} for {peer}");
                            busy(stream).await;
                            slots.waiting.fetch_sub(1, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            };
            let deadline = tokio::time::Instant::now() + request_timeout;
            let service = hyper_util::service::TowerToHyperService::new(
                router.layer(axum::Extension(axum::extract::ConnectInfo(peer))),
            );
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let connection = DEADLINE.scope(deadline, connection);
            match tokio::time::timeout(CONNECTION_LIFETIME, connection).await {
                Ok(Err(e)) => tracing::debug!("connection: {e}"),
                Ok(Ok(())) => {}
                Err(_) => tracing::debug!("connection closed after {CONNECTION_LIFETIME:?}"),
            }
            drop(slot);
        });
    }
}

//! The frontend: HTTP, balanced per request as HAProxy's `mode http` with `balance roundrobin`
//! does. Each request goes to the next server that is UP (`UP 1/3` counts) and `ready` (a
//! server in maint or drain, or DOWN, gets no new request), also on a kept-alive client
//! connection; sessions are counted per server (what a drain waits for).
//!
//! A client connection is given a server as soon as it is accepted (a connection held open
//! without a request is a session on that server, as with the TCP proxy this used to be): its
//! first request goes there; every later request is balanced again. A server's session ends
//! when the response to its request has been read.

use super::instance::Lb;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// `timeout connect` is 5 s in the configuration; loopback answers at once or never.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// `timeout server 50000`.
const SERVER_TIMEOUT: Duration = Duration::from_secs(50);

/// A proxied session: counted on the frontend and (while it has one) on a server, by the
/// "process" (generation) that accepted it: after a reload the old process's sessions run on
/// uncounted, as they would in the old process that `haproxy -sf` leaves finishing them.
pub(super) struct Session {
    lb: Arc<Lb>,
    server: Option<usize>,
    generation: u64,
}

impl Session {
    fn open(lb: Arc<Lb>) -> Session {
        let generation = {
            let mut st = lb.lock();
            st.fe_scur += 1;
            st.fe_smax = st.fe_smax.max(st.fe_scur);
            st.fe_stot += 1;
            st.generation
        };
        Session {
            lb,
            server: None,
            generation,
        }
    }

    /// The session is on server `idx` now (and no longer on any other).
    fn assign(&mut self, idx: usize) {
        self.release();
        let mut st = self.lb.lock();
        if st.generation != self.generation {
            return;
        }
        let s = &mut st.servers[idx];
        s.scur += 1;
        s.smax = s.smax.max(s.scur);
        s.stot += 1;
        self.server = Some(idx);
    }

    /// The session is on no server.
    fn release(&mut self) {
        let Some(i) = self.server.take() else {
            return;
        };
        let mut st = self.lb.lock();
        if st.generation == self.generation {
            st.servers[i].scur = st.servers[i].scur.saturating_sub(1);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.release();
        let mut st = self.lb.lock();
        if st.generation != self.generation {
            return;
        }
        st.fe_scur = st.fe_scur.saturating_sub(1);
    }
}

pub(super) async fn frontend_loop(lb: Arc<Lb>, listener: &TcpListener) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        while conns.try_join_next().is_some() {}
        conns.spawn(proxy(lb.clone(), client));
    }
}

/// Connect to the next usable server in round-robin order (a server that refuses is counted
/// in `econ` and the next one tried, as `option redispatch` does). None when no server is
/// usable or none answers. `turn`: take the round-robin turn (a request does; a connection
/// being accepted does not, its first request will).
async fn connect_next(lb: &Lb, turn: bool) -> Option<(usize, TcpStream)> {
    let order = if turn {
        lb.lock().pick_order()
    } else {
        lb.lock().peek_order()
    };
    for idx in order {
        let port = lb.info.servers[idx].port;
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(("127.0.0.1", port))).await {
            Ok(Ok(server)) => return Some((idx, server)),
            _ => lb.lock().servers[idx].econ += 1,
        }
    }
    None
}

/// One client connection: the session and the server connection its first request uses.
struct Conn {
    session: Session,
    first: Option<TcpStream>,
}

/// Serve one client connection; close it at once if no server is usable.
pub(super) async fn proxy(lb: Arc<Lb>, client: TcpStream) {
    let mut session = Session::open(lb.clone());
    let Some((idx, server)) = connect_next(&lb, false).await else {
        return;
    };
    session.assign(idx);
    let conn = Arc::new(tokio::sync::Mutex::new(Conn {
        session,
        first: Some(server),
    }));
    let service = hyper::service::service_fn(move |req| forward(lb.clone(), conn.clone(), req));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(client), service)
        .await;
}

/// Forward one request to a server and its response back.
async fn forward(
    lb: Arc<Lb>,
    conn: Arc<tokio::sync::Mutex<Conn>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    // Requests on one connection come one at a time: the lock is never contended.
    let mut c = conn.lock().await;
    let server = match c.first.take() {
        Some(s) => {
            lb.lock().advance_rr();
            s
        }
        None => match connect_next(&lb, true).await {
            Some((idx, s)) => {
                c.session.assign(idx);
                s
            }
            None => {
                return Ok(haproxy_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "No server is available to handle this request.",
                ));
            }
        },
    };
    // As `http-request add-header Via "1.1 <name>"` would: the node's request log tells a
    // proxied request from one sent to it directly.
    let mut req = req;
    if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("1.1 {}", lb.info.name)) {
        req.headers_mut().append(hyper::header::VIA, v);
    }
    let resp = match tokio::time::timeout(SERVER_TIMEOUT, send(server, req)).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(_)) => haproxy_error(
            StatusCode::BAD_GATEWAY,
            "The server returned an invalid or incomplete response.",
        ),
        Err(_) => haproxy_error(
            StatusCode::GATEWAY_TIMEOUT,
            "The server didn't respond in time.",
        ),
    };
    c.session.release();
    Ok(resp)
}

/// Send `req` over a fresh connection to a server and read the whole response.
async fn send(server: TcpStream, req: Request<Incoming>) -> anyhow::Result<Response<Full<Bytes>>> {
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(server)).await?;
    let driver = tokio::spawn(connection);
    let result = async {
        let resp = sender.send_request(req).await?;
        let (mut parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        // The body is whole now: its length is known, however the server framed it.
        parts.headers.remove(hyper::header::TRANSFER_ENCODING);
        parts.headers.remove(hyper::header::CONNECTION);
        anyhow::Ok(Response::from_parts(parts, Full::new(body)))
    }
    .await;
    driver.abort();
    result
}

/// HAProxy's own error page for `status`.
fn haproxy_error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<html><body><h1>{} {reason}</h1>\n{message}\n</body></html>\n",
        status.as_u16()
    );
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html"),
    );
    resp.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    resp
}
